package taskiqrabbitmq

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// amqpURL returns TASKIQ_AMQP_URL, or skips the test (fails it in CI,
// where the integration tests must run against the real server).
func amqpURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("TASKIQ_AMQP_URL"); u != "" {
		return u
	}
	if v := os.Getenv("CI"); v != "" && v != "false" && v != "0" {
		t.Fatal("TASKIQ_AMQP_URL is not set: CI must run these tests against RabbitMQ; set TASKIQ_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/")
	}
	t.Skip("TASKIQ_AMQP_URL is not set; these tests need a RabbitMQ server")
	return ""
}

// names is a test's own exchange and queues on the shared server, removed
// when the test ends.
type names struct {
	prefix   string
	exchange string
	queue    string
}

func newNames(t testing.TB) names {
	p := "taskiq-test-" + randomTag()
	n := names{prefix: p, exchange: p + ".x", queue: p}
	url := amqpURL(t)
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		for _, q := range []string{n.queue, n.queue + ".dead_letter", n.queue + ".delay"} {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
		_ = ch.ExchangeDelete(n.exchange, false, false)
	})
	return n
}

// config is the broker config of the test's names; queue_expires removes
// the queues the test cannot name (routing targets, delay buckets).
func (n names) config(t testing.TB, extra map[string]any) map[string]any {
	c := map[string]any{"url": amqpURL(t), "exchange": n.exchange, "queue": n.queue, "queue_expires": "60s"}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func jsonOf(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// newTestBroker builds a broker in this process (no plugin boundary), for
// tests that look at the server side.
func newTestBroker(t testing.TB, cfg map[string]any) (*broker, error) {
	b, err := newBroker(context.Background(), sdk.Config{Raw: json.RawMessage(jsonOf(t, cfg)), Logger: hclog.NewNullLogger()})
	if err == nil {
		t.Cleanup(func() { _ = b.Close(context.Background()) })
	}
	return b, err
}

// rawChannel is a plain channel on the test server.
func rawChannel(t testing.TB) *amqp.Channel {
	conn, err := amqp.Dial(amqpURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	require.NoError(t, err)
	return ch
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
