package taskiqnats

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

func TestQueueSubjectsAndConsumers(t *testing.T) {
	o := brokerOptions{subject: "taskiq_tasks", durable: "taskiq_durable"}
	require.Equal(t, "taskiq_tasks", o.queueSubject(""))
	require.Equal(t, "taskiq_tasks", o.queueSubject("taskiq_tasks"), "the subject itself names the default queue")
	require.Equal(t, "taskiq_tasks.low", o.queueSubject("low"))
	require.Equal(t, "taskiq_durable", o.consumerName(""))
	require.Equal(t, "taskiq_durable_low", o.consumerName("low"))
	// Dots are not allowed in consumer names; a hash keeps "a.b" and "a_b" apart.
	require.NotEqual(t, o.consumerName("a.b"), o.consumerName("a_b"))
	require.NotContains(t, o.consumerName("a.b"), ".")
	require.Error(t, validQueue("has space"))
	require.Error(t, validQueue("wild.*"))
	require.NoError(t, validQueue("a.b"))
}

func TestSubjectMatches(t *testing.T) {
	for _, c := range []struct {
		filter, subject string
		want            bool
	}{
		{"taskiq_tasks", "taskiq_tasks", true},
		{"taskiq_tasks", "taskiq_tasks.low", false},
		{"taskiq_tasks.>", "taskiq_tasks.low", true},
		{"taskiq_tasks.>", "taskiq_tasks.a.b", true},
		{"taskiq_tasks.>", "taskiq_tasks", false},
		{"taskiq_tasks.*", "taskiq_tasks.low", true},
		{"taskiq_tasks.*", "taskiq_tasks.a.b", false},
		{">", "anything.at.all", true},
	} {
		require.Equal(t, c.want, subjectMatches(c.filter, c.subject), "%s ~ %s", c.filter, c.subject)
	}
	// A stream made by taskiq-nats takes only the default subject.
	require.False(t, covered([]string{"taskiq_tasks"}, "taskiq_tasks.low"))
}

func TestMsgIDKeepsRetriesAndRequeuesApart(t *testing.T) {
	body := func(labels map[string]any) []byte {
		m := &wire.Message{TaskID: "abc", TaskName: "m:f"}
		for k, v := range labels {
			m.SetLabel(k, v)
		}
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	first := msgID(sdk.Outgoing{TaskID: "abc", Body: body(nil)})
	retry1 := msgID(sdk.Outgoing{TaskID: "abc", Body: body(map[string]any{wire.LabelRetries: 1})})
	retry2 := msgID(sdk.Outgoing{TaskID: "abc", Body: body(map[string]any{wire.LabelRetries: 2})})
	requeue := msgID(sdk.Outgoing{TaskID: "abc", Body: body(map[string]any{wire.LabelRequeue: 1})})
	require.Equal(t, "abc", first, "a first kick is deduplicated by its task id")
	ids := map[string]bool{first: true, retry1: true, retry2: true, requeue: true}
	require.Len(t, ids, 4, "retries and requeues reuse the task id but must not be dropped as duplicates: %v", ids)
	require.Equal(t, retry1, msgID(sdk.Outgoing{TaskID: "abc", Body: body(map[string]any{wire.LabelRetries: 1})}),
		"the same retry kicked twice is a duplicate")
	require.Empty(t, msgID(sdk.Outgoing{Body: body(nil)}))
}

func TestParseAckReply(t *testing.T) {
	ref, ok := parseAckReply("$JS.ACK.taskiq_jetstream.taskiq_durable.3.42.40.1733140000000000000.7")
	require.True(t, ok)
	require.Equal(t, ackRef{stream: "taskiq_jetstream", consumer: "taskiq_durable", delivered: 3, streamSeq: 42}, ref)
	ref, ok = parseAckReply("$JS.ACK.hub.ACCHASH.s.c.2.9.8.1733140000000000000.0.tok")
	require.True(t, ok)
	require.Equal(t, ackRef{stream: "s", consumer: "c", delivered: 2, streamSeq: 9}, ref)
	for _, bad := range []string{"", "orders.new", "$JS.ACK.s.c.x.9.8.1.0", "$JS.API.CONSUMER.INFO.s.c", "$JS.ACK.s.c.1.2"} {
		_, ok := parseAckReply(bad)
		require.False(t, ok, bad)
	}
}
