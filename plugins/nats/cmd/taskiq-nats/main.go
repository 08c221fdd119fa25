// Command taskiq-nats is the NATS JetStream plugin binary of taskiq-go: a
// broker and a key-value result backend, loaded by the taskiq host through
// go-plugin. See plugins/nats/README.md.
package main

import (
	"github.com/taskiq-go/taskiq/plugin/sdk"
	taskiqnats "github.com/taskiq-go/taskiq/plugins/nats"
)

func main() { sdk.Serve(taskiqnats.Plugin()) }
