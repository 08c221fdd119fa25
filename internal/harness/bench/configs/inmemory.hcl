# The middleware benchmark, run A: the in-memory plugin as broker and
# result backend, no middleware. Paths are relative to this file.
plugin_dir = "../../../../bin"

broker "default" {
  plugin = "taskiq-inmemory"
}

result_backend "default" {
  plugin = "taskiq-inmemory"
}
