package taskiqnats_test

import (
	"fmt"

	taskiqnats "github.com/taskiq-go/taskiq/plugins/nats"
)

// The broker's defaults are the names of Python taskiq-nats'
// PullBasedJetStreamBroker, so a Go worker joins a Python service's stream
// without configuration. cmd/taskiq-nats serves this plugin with
// sdk.Serve(taskiqnats.Plugin()).
func ExamplePlugin() {
	p := taskiqnats.Plugin()
	for _, name := range []string{"subject", "stream", "durable", "ack_wait", "retention"} {
		a, _ := p.Broker.Schema.Attribute(name)
		fmt.Printf("%s = %v\n", name, a.Default)
	}
	fmt.Println(p.Broker.Capabilities)
	// Output:
	// subject = taskiq_tasks
	// stream = taskiq_jetstream
	// durable = taskiq_durable
	// ack_wait = 30s
	// retention = workqueue
	// [ackable lease delay dead_letter routing stable_ids dedup]
}
