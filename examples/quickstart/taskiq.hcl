# The quickstart's configuration: the in-memory plugin, running as its own
# process, serves both the broker and the result backend. No server needed.
# Paths are relative to this file.
plugin_dir = "../../bin"

broker "default" {
  plugin = "taskiq-inmemory"
  config {
    queue = "quickstart"
  }
}

result_backend "default" {
  plugin = "taskiq-inmemory"
}

worker {
  max_async_tasks = 10
  ack_type        = "when_saved"
}
