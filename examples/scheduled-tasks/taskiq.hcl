# The scheduled-tasks example: a Redis broker (which deduplicates the
# scheduler's kicks) and result backend on 127.0.0.1:6379, or TASKIQ_REDIS_URL.
plugin_dir = "../../bin"

broker "default" {
  plugin = "taskiq-redis"
  config {
    url   = env("TASKIQ_REDIS_URL", "redis://127.0.0.1:6379/0")
    queue = "scheduled-example"
  }
}

result_backend "default" {
  plugin = "taskiq-redis"
  config {
    url = env("TASKIQ_REDIS_URL", "redis://127.0.0.1:6379/0")
  }
}
