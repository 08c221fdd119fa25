// Command taskiq-redis is the Redis plugin binary of taskiq-go: a broker
// (stream, list or pub/sub mode) and a result backend, loaded by the taskiq
// host through go-plugin. See plugins/redis/README.md.
package main

import (
	"github.com/taskiq-go/taskiq/plugin/sdk"
	taskiqredis "github.com/taskiq-go/taskiq/plugins/redis"
)

func main() { sdk.Serve(taskiqredis.Plugin()) }
