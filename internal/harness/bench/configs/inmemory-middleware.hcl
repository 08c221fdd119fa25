# The middleware benchmark, run B: as inmemory.hcl, plus a middleware
# plugin implementing pre_send, pre_execute and post_execute.
plugin_dir = "../../../../bin"

broker "default" {
  plugin = "taskiq-inmemory"
}

result_backend "default" {
  plugin = "taskiq-inmemory"
}

middleware "bench" {
  plugin = "taskiq-bench-middleware"
}
