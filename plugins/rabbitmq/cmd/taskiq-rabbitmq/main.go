// Command taskiq-rabbitmq is the RabbitMQ broker plugin of taskiq-go, loaded
// by the taskiq host through go-plugin. See plugins/rabbitmq/README.md.
package main

import (
	"github.com/taskiq-go/taskiq/plugin/sdk"
	taskiqrabbitmq "github.com/taskiq-go/taskiq/plugins/rabbitmq"
)

func main() { sdk.Serve(taskiqrabbitmq.Plugin()) }
