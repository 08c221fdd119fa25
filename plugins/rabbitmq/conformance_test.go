package taskiqrabbitmq

import (
	"testing"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/conformance"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

const conformanceMaxSize = 64 << 10

// TestConformance runs the SDK's broker suite against the plugin as a real
// process on the RabbitMQ server of TASKIQ_AMQP_URL: the native layout
// (quorum queues), and a classic queue with priorities. Every launch has
// an exchange and queues of its own.
func TestConformance(t *testing.T) {
	amqpURL(t)
	layouts := map[string]map[string]any{
		"native":       nil,
		"classic-prio": {"queue_type": "classic", "max_priority": 9},
		"aio-pika-0.5": {"compat": compat05},
	}
	for name, extra := range layouts {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			caps := Capabilities
			if extra["max_priority"] != nil {
				caps = append(append([]string{}, caps...), sdk.CapPriority)
			}
			conformance.TestBroker(t, func(t *testing.T) sdk.Broker {
				cfg := newNames(t).config(t, extra)
				return sdktest.Launch(t, sdk.KindBroker, jsonOf(t, cfg), sdktest.WithMaxMessageSize(conformanceMaxSize)).Broker()
			}, caps, conformance.WithMaxMessageSize(conformanceMaxSize))
		})
	}
}
