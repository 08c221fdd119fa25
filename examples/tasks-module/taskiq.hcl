# Configuration of the task-module example: Redis carries the messages, so a
# `taskiq kick` process reaches the `taskiq worker` processes. Paths are
# relative to this file; `make plugins` builds bin/taskiq-redis.
plugin_dir = "../../bin"

broker "default" {
  plugin = "taskiq-redis"
  config {
    url   = env("TASKIQ_REDIS_URL", "redis://127.0.0.1:6379/0")
    queue = "example-tasks"
    mode  = "stream" # consumer groups: acks, leases, redelivery after a crash
    lease = "10s"
  }
}

result_backend "default" {
  plugin = "taskiq-redis"
  config {
    url        = env("TASKIQ_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix     = "example-tasks"
    result_ttl = "1h"
  }
}

worker {
  workers         = 2
  max_async_tasks = 10
  lease           = "10s"
}
