package taskiqrabbitmq

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/testcerts"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

func decodeT(t *testing.T, cfg map[string]any) (options, error) {
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	return decodeConfig(sdk.Config{Raw: raw})
}

func TestParseMismatch(t *testing.T) {
	for _, tc := range []struct {
		reason        string
		arg, name     string
		recv, current argValue
	}{
		{`PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received none but current is the value '5' of type 'signedint'`,
			"x-delivery-limit", "q", argValue{}, argValue{true, "5", "signedint"}},
		{`PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received '6' but current is '5'`,
			"x-delivery-limit", "q", argValue{true, "6", ""}, argValue{true, "5", ""}},
		{`PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'taskiq' in vhost 'v': received the value 'quorum' of type 'longstr' but current is none`,
			"x-queue-type", "taskiq", argValue{true, "quorum", "longstr"}, argValue{}},
		{`PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'taskiq' in vhost '/': received 'true' but current is 'false'`,
			"durable", "taskiq", argValue{true, "true", ""}, argValue{true, "false", ""}},
	} {
		m, ok := parseMismatch(tc.reason)
		require.True(t, ok, tc.reason)
		require.Equal(t, tc.arg, m.arg)
		require.Equal(t, tc.name, m.name)
		require.Equal(t, tc.recv, m.received)
		require.Equal(t, tc.current, m.current)
	}
	_, ok := parseMismatch(`NOT_FOUND - no queue 'x' in vhost '/'`)
	require.False(t, ok)
}

func TestAdoptTakesTheServersValue(t *testing.T) {
	s := queueSpec{name: "q", durable: true, args: amqp.Table{"x-queue-type": "quorum", "x-delivery-limit": int64(20)}}
	orig := s.args
	s.adopt(mismatch{arg: "x-delivery-limit", current: argValue{true, "5", "signedint"}})
	s.adopt(mismatch{arg: "x-queue-type", current: argValue{}})
	s.adopt(mismatch{arg: "x-max-priority", current: argValue{true, "9", "signedint"}})
	s.adopt(mismatch{arg: "durable", current: argValue{true, "false", ""}})
	require.Equal(t, amqp.Table{"x-delivery-limit": int64(5), "x-max-priority": int64(9)}, s.args)
	require.False(t, s.durable)
	require.Equal(t, queueClassic, s.queueType())
	require.Equal(t, 9, s.maxPriority())
	require.Equal(t, int64(20), orig["x-delivery-limit"], "the original table is not changed")
}

func TestBucketOf(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		0:                       1,
		time.Microsecond:        1,
		99 * time.Millisecond:   99,
		100 * time.Millisecond:  100,
		1001 * time.Millisecond: 1100,
		1250 * time.Millisecond: 1300,
		time.Second:             1000,
		time.Hour:               3600000,
		time.Hour + time.Second: 3700000,
	} {
		got := bucketOf(d)
		require.Equal(t, want, got, "bucket of %s", d)
		require.GreaterOrEqual(t, time.Duration(got)*time.Millisecond, d, "a bucket never delivers early")
		if d >= 100*time.Millisecond {
			require.LessOrEqual(t, float64(got)/float64(d.Milliseconds()), 1.1, "a bucket is at most 10%% late")
		}
	}
	spec := bucketSpec("q", 1500)
	require.Equal(t, "q.delay.1500", spec.name)
	require.Equal(t, int64(1500), spec.args["x-message-ttl"])
	require.Equal(t, "q", spec.args["x-dead-letter-routing-key"])
	// A message published just before the redeclare deadline leaves before
	// the queue may expire.
	expires := time.Duration(spec.args["x-expires"].(int64)) * time.Millisecond
	require.Less(t, bucketRedeclareAfter(1500)+1500*time.Millisecond, expires)
}

func TestAttemptOf(t *testing.T) {
	require.Equal(t, 1, attemptOf(amqp.Delivery{}))
	require.Equal(t, 2, attemptOf(amqp.Delivery{Redelivered: true}), "classic queue redelivery")
	require.Equal(t, 4, attemptOf(amqp.Delivery{Redelivered: true, Headers: amqp.Table{headerDeliveryCount: int64(3)}}), "quorum delivery count")
	require.Equal(t, 3, attemptOf(amqp.Delivery{Headers: amqp.Table{headerAttempt: int64(3)}}), "republished after two nacks")
	require.Equal(t, 5, attemptOf(amqp.Delivery{Redelivered: true, Headers: amqp.Table{headerAttempt: int32(3), headerDeliveryCount: int64(2)}}))
}

func TestDeliveryID(t *testing.T) {
	id := deliveryID(7, 42)
	g, tag, err := parseDeliveryID(id)
	require.NoError(t, err)
	require.Equal(t, uint64(7), g)
	require.Equal(t, uint64(42), tag)
	for _, bad := range []string{"", "7", "a.1", "1.b", "1-2"} {
		_, _, err := parseDeliveryID(bad)
		require.Error(t, err, bad)
	}
}

// TestLayouts pins the declarations of each layout: those of the
// aio-pika layouts are exactly what taskiq-aio-pika declares by default,
// so that neither side's declaration is refused by the other's queue.
func TestLayouts(t *testing.T) {
	o, err := decodeT(t, map[string]any{"compat": compat05})
	require.NoError(t, err)
	q := taskQueueSpec(o, "taskiq")
	require.False(t, q.durable)
	require.Equal(t, amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "taskiq.dead_letter"}, q.args)
	require.Equal(t, queueSpec{name: "taskiq.dead_letter", args: amqp.Table{}}, deadLetterSpec(o))
	require.Equal(t, "taskiq.delay", o.delayQueue)
	d := pythonDelaySpec(o)
	require.False(t, d.durable)
	require.Equal(t, amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "taskiq"}, d.args)

	o, err = decodeT(t, map[string]any{"compat": compat06})
	require.NoError(t, err)
	q = taskQueueSpec(o, "taskiq")
	require.True(t, q.durable)
	require.Equal(t, amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "taskiq.dead_letter", "x-queue-type": "quorum"}, q.args)
	require.Empty(t, q.explicit, "nothing set explicitly: an existing queue's arguments are adopted")
	require.Equal(t, "", o.delayQueue, "aio-pika-0.6 has no delay queue unless configured")
	o, err = decodeT(t, map[string]any{"compat": compat06, "delay_queue": "taskiq.delay"})
	require.NoError(t, err)
	require.Equal(t, amqp.Table{"x-dead-letter-exchange": "taskiq", "x-dead-letter-routing-key": "taskiq", "x-queue-type": "quorum"}, pythonDelaySpec(o).args)

	o, err = decodeT(t, map[string]any{})
	require.NoError(t, err)
	q = taskQueueSpec(o, "taskiq")
	require.Equal(t, int64(defaultDeliveryLimit), q.args["x-delivery-limit"])
	require.Equal(t, "quorum", q.args["x-queue-type"])

	o, err = decodeT(t, map[string]any{"queue_type": "quorum", "delivery_limit": 3})
	require.NoError(t, err)
	q = taskQueueSpec(o, "taskiq")
	require.Equal(t, map[string]string{"x-queue-type": "queue_type", "x-delivery-limit": "delivery_limit"}, q.explicit)

	o, err = decodeT(t, map[string]any{"max_priority": 5})
	require.NoError(t, err)
	q = taskQueueSpec(o, "taskiq")
	require.Equal(t, queueClassic, q.queueType(), "priorities need a classic queue")
	require.Equal(t, 5, q.maxPriority())
}

func TestConfigErrors(t *testing.T) {
	for attr, cfg := range map[string]map[string]any{
		"compat":            {"compat": "aio-pika-0.7"},
		"url":               {"url": "http://localhost"},
		"queue_type":        {"queue_type": "stream"},
		"max_priority":      {"max_priority": 256},
		"delivery_limit":    {"delivery_limit": -1},
		"publish_timeout":   {"publish_timeout": "soon"},
		"unavailable_after": {"unavailable_after": "10ms"},
		"queue_expires":     {"queue_expires": "10ms"},
	} {
		_, err := decodeT(t, cfg)
		require.Error(t, err, attr)
		ces := sdk.ConfigErrors(err)
		require.Len(t, ces, 1)
		require.Equal(t, attr, ces[0].Attribute)
	}
	_, err := decodeT(t, map[string]any{"queue_type": "quorum", "max_priority": 3})
	require.ErrorContains(t, err, "quorum queues of RabbitMQ 3.x have no priorities")

	o, err := decodeT(t, map[string]any{"url": "amqp://bob:old@h:5672/v", "password": "s3cret"})
	require.NoError(t, err)
	require.Equal(t, "amqp://bob:s3cret@h:5672/v", o.url)
	require.Equal(t, "h:5672/v", o.addr, "the address in messages has no credentials")
	require.Equal(t, "amqp://bob:xxxxx@h:5672/v", redactURL("amqp://bob:s3cret@h:5672/v"))
}

func TestAckWindow(t *testing.T) {
	var w ackWindow
	up, single := w.add([]uint64{2, 3})
	require.Zero(t, up, "tag 1 is still held: no multiple ack")
	require.Equal(t, []uint64{2, 3}, single)
	up, single = w.add([]uint64{1, 5})
	require.Equal(t, uint64(1), up, "1 acks every outstanding tag up to 1; 2 and 3 were acked before")
	require.Equal(t, []uint64{5}, single)
	require.Equal(t, uint64(3), w.mark)
	up, single = w.add([]uint64{7, 4, 6})
	require.Equal(t, uint64(7), up, "4..7 all acked: one frame")
	require.Empty(t, single)
	require.Empty(t, w.done)

	off := ackWindow{done: map[uint64]bool{}}
	for i := range uint64(maxAckWindow) {
		off.done[i+2] = true
	}
	up, single = off.add([]uint64{1})
	require.Zero(t, up, "past the bound the window gives up")
	require.Equal(t, []uint64{1}, single)
	require.True(t, off.off)
}

func TestIsConsumerTimeout(t *testing.T) {
	require.True(t, isConsumerTimeout(&amqp.Error{Code: amqp.PreconditionFailed,
		Reason: "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 1800000 ms. This timeout value can be configured, see consumers doc guide to learn more"}))
	require.False(t, isConsumerTimeout(&amqp.Error{Code: amqp.PreconditionFailed, Reason: "PRECONDITION_FAILED - unknown delivery tag 3"}))
}

func TestCheckWithoutServer(t *testing.T) {
	check := Plugin().Broker.Check
	require.NoError(t, check(context.Background(), sdk.Config{Raw: json.RawMessage(`{"compat":"aio-pika-0.6","url":"amqp://nobody@203.0.113.1:5672/"}`)}),
		"a valid block passes without connecting")
	err := check(context.Background(), sdk.Config{Raw: json.RawMessage(`{"compat":"aio-pika-0.7"}`)})
	require.Equal(t, "compat", sdk.ConfigErrors(err)[0].Attribute)
}

// TestTLSAttributes: the tls_* attributes need an amqps:// url (an amqp://
// one would send everything in the clear), report unreadable or unpaired
// files against their attribute, and end up in the client's configuration.
func TestTLSAttributes(t *testing.T) {
	tf := testcerts.New(t)
	for _, c := range []struct {
		cfg  map[string]any
		attr string
	}{
		{map[string]any{"tls_ca_file": tf.CA}, "tls_ca_file"},
		{map[string]any{"url": "amqp://h/", "tls_insecure_skip_verify": true}, "tls_insecure_skip_verify"},
		{map[string]any{"url": "amqps://h/", "tls_ca_file": "/no/such/ca.pem"}, "tls_ca_file"},
		{map[string]any{"url": "amqps://h/", "tls_cert_file": tf.ClientCert}, "tls_key_file"},
	} {
		_, err := decodeT(t, c.cfg)
		ces := sdk.ConfigErrors(err)
		require.Len(t, ces, 1, "%v: %v", c.cfg, err)
		require.Equal(t, c.attr, ces[0].Attribute)
	}
	o, err := decodeT(t, map[string]any{"url": "amqps://h:5671/", "tls_ca_file": tf.CA,
		"tls_cert_file": tf.ClientCert, "tls_key_file": tf.ClientKey})
	require.NoError(t, err)
	require.NotNil(t, o.tls.RootCAs)
	require.Len(t, o.tls.Certificates, 1)
	o, err = decodeT(t, map[string]any{"url": "amqps://h:5671/"})
	require.NoError(t, err)
	require.Nil(t, o.tls, "without tls_* attributes the client's own amqps:// handling applies")
}
