package taskiqnats

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// jsFor opens a plain JetStream client for checking server state.
func jsFor(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

func testMsg(t *testing.T, id string) sdk.Outgoing {
	t.Helper()
	m := &wire.Message{TaskID: id, TaskName: "m:f", Args: []json.RawMessage{json.RawMessage("1")}}
	b, err := m.MarshalJSON()
	require.NoError(t, err)
	return sdk.Outgoing{TaskID: id, TaskName: m.TaskName, Body: b}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// streamMsgs is how many messages a stream holds.
func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(ctxT(t), name)
	require.NoError(t, err)
	info, err := s.Info(ctxT(t))
	require.NoError(t, err)
	return info.State.Msgs
}

// recvN receives exactly n deliveries.
func recvN(t *testing.T, st sdk.Stream, n int) []sdk.Delivery {
	t.Helper()
	var out []sdk.Delivery
	for len(out) < n {
		ds, err := st.Recv(ctxT(t), n-len(out))
		require.NoError(t, err)
		out = append(out, ds...)
	}
	return out
}

// eventually polls cond until it holds or the deadline passes: for server
// state that a settlement changes asynchronously.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeliveryIDsSurvivePluginRestart proves capability stable_ids: a
// delivery handed out by a plugin process that was then SIGKILLed is acked
// through a new process, and the message is gone (no redelivery).
func TestDeliveryIDsSurvivePluginRestart(t *testing.T) {
	url := natsURL(t)
	t.Parallel()
	prefix := testNames(t, url)
	cfg := testBrokerConfig(t, url, prefix, map[string]any{"ack_wait": "30s"})
	first := sdktest.Launch(t, sdk.KindBroker, cfg)
	b1 := first.Broker()
	require.NoError(t, b1.Kick(ctxT(t), []sdk.Outgoing{testMsg(t, "stable-1")}))
	st1, err := b1.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	ds, err := st1.Recv(ctxT(t), 1)
	require.NoError(t, err)
	require.Len(t, ds, 1)

	require.NoError(t, syscall.Kill(first.Pid(), syscall.SIGKILL))
	second := sdktest.Launch(t, sdk.KindBroker, cfg)
	st2, err := second.Broker().Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	defer st2.Close()
	require.NoError(t, st2.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))

	js := jsFor(t, url)
	eventually(t, "the ack through the new process removes the message", func() bool { return streamMsgs(t, js, prefix) == 0 })
	c, err := js.Consumer(ctxT(t), prefix, prefix+"_durable")
	require.NoError(t, err)
	info, err := c.Info(ctxT(t))
	require.NoError(t, err)
	require.Zero(t, info.NumAckPending, "nothing left to redeliver")
}

// TestDeadLetterStream: a dead-lettered delivery is terminated and copied
// to the dead-letter stream with its reason; a message delivered more than
// max_deliver times is dead-lettered the same way.
func TestDeadLetterStream(t *testing.T) {
	url := natsURL(t)
	t.Parallel()
	prefix := testNames(t, url)
	b := sdktest.Launch(t, sdk.KindBroker, testBrokerConfig(t, url, prefix, map[string]any{"max_deliver": 2})).Broker()
	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{testMsg(t, "dead-1"), testMsg(t, "poison-1")}))
	st, err := b.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	defer st.Close()
	ds := recvN(t, st, 2)
	byTask := map[string]sdk.Delivery{}
	for _, d := range ds {
		m, err := wire.DecodeMessage(d.Body)
		require.NoError(t, err)
		byTask[m.TaskID] = d
	}
	require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{
		{DeliveryID: byTask["dead-1"].ID, Kind: sdk.SettleDeadLetter, Reason: "unknown task m:f"},
		{DeliveryID: byTask["poison-1"].ID, Kind: sdk.SettleNack},
	}))
	again, err := st.Recv(ctxT(t), 1)
	require.NoError(t, err)
	require.Equal(t, 2, again[0].Attempt)
	require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: again[0].ID, Kind: sdk.SettleNack}}))

	js := jsFor(t, url)
	eventually(t, "both messages leave the queue stream", func() bool { return streamMsgs(t, js, prefix) == 0 })
	dead, err := js.Stream(ctxT(t), prefix+"_dead")
	require.NoError(t, err)
	eventually(t, "two dead letters", func() bool {
		info, err := dead.Info(ctxT(t))
		return err == nil && info.State.Msgs == 2
	})
	reasons := map[string]string{}
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := dead.GetMsg(ctxT(t), seq)
		require.NoError(t, err)
		msg, err := wire.DecodeMessage(m.Data)
		require.NoError(t, err, "the dead letter is the message body")
		reasons[msg.TaskID] = m.Header.Get(hdrReason)
		require.Equal(t, prefix+"_tasks", m.Header.Get(hdrQueue))
	}
	require.Equal(t, map[string]string{"dead-1": "unknown task m:f", "poison-1": "exceeded max_deliver (2)"}, reasons)
}

// TestKickDeduplicatesTaskIDs: a second kick of one task id within the
// duplicate window is dropped (capability dedup).
func TestKickDeduplicatesTaskIDs(t *testing.T) {
	url := natsURL(t)
	t.Parallel()
	prefix := testNames(t, url)
	b := sdktest.Launch(t, sdk.KindBroker, testBrokerConfig(t, url, prefix, nil)).Broker()
	windowed := func(id string) sdk.Outgoing {
		m := testMsg(t, id)
		m.DedupWindow = time.Minute
		return m
	}
	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{windowed("slot-1")}))
	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{windowed("slot-1"), windowed("slot-2")}))
	require.Equal(t, uint64(2), streamMsgs(t, jsFor(t, url), prefix))
	// A kick without a window is never dropped.
	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{testMsg(t, "plain"), testMsg(t, "plain")}))
	require.Equal(t, uint64(4), streamMsgs(t, jsFor(t, url), prefix))
}

// existingStream creates, the way taskiq-nats does (limits retention, only
// the default subject), the stream a test's broker will find.
func existingStream(t *testing.T, url string) (prefix, subject string, js jetstream.JetStream) {
	t.Helper()
	prefix = testNames(t, url)
	js = jsFor(t, url)
	subject = prefix + "_tasks"
	_, err := js.CreateStream(ctxT(t), jetstream.StreamConfig{Name: prefix, Subjects: []string{subject}})
	require.NoError(t, err)
	return prefix, subject, js
}

// TestExistingStreamIsUsedAsItIs: a stream created the way taskiq-nats
// creates it (limits retention, only the default subject) is not changed;
// a message a Python producer published there (body = message JSON, labels
// as headers) is delivered as it is, and a queue the stream does not take
// is refused with a message that says how to fix it.
func TestExistingStreamIsUsedAsItIs(t *testing.T) {
	url := natsURL(t)
	t.Parallel()
	prefix, subject, js := existingStream(t, url)
	py := []byte(`{"task_id": "py-1", "task_name": "app.tasks:add", "labels": {"queue_name": "x"}, "labels_types": {"queue_name": 3}, "args": [1, 2], "kwargs": {}}`)
	_, err := js.PublishMsg(ctxT(t), &nats.Msg{Subject: subject, Data: py, Header: nats.Header{"queue_name": []string{"x"}}})
	require.NoError(t, err)

	b := sdktest.Launch(t, sdk.KindBroker, testBrokerConfig(t, url, prefix, nil)).Broker()
	st, err := b.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	defer st.Close()
	ds, err := st.Recv(ctxT(t), 1)
	require.NoError(t, err)
	require.Equal(t, string(py), string(ds[0].Body))
	require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))

	low := testMsg(t, "low-1")
	low.Queue = "low"
	err = b.Kick(ctxT(t), []sdk.Outgoing{low})
	require.Error(t, err)
	require.Contains(t, err.Error(), fmt.Sprintf("add %q to the stream's subjects", subject+".low"))

	s, err := js.Stream(ctxT(t), prefix)
	require.NoError(t, err)
	info, err := s.Info(ctxT(t))
	require.NoError(t, err)
	require.Equal(t, []string{subject}, info.Config.Subjects, "the existing stream is not changed")
	require.Equal(t, jetstream.LimitsPolicy, info.Config.Retention)
}

// TestCompactRemovesOnlyAckedMessages: messages at or below the consumer's
// ack floor are removed from the stream, the others stay. (A work-queue
// stream removes acked messages itself; the leftovers compact is for only
// appear after an unclean server restart, so a limits stream, which keeps
// acked messages, stands in for it.)
func TestCompactRemovesOnlyAckedMessages(t *testing.T) {
	url := natsURL(t)
	t.Parallel()
	prefix := testNames(t, url)
	cfg := cfgOf(t, map[string]any{"servers": []string{url}, "subject": prefix + "_tasks", "stream": prefix,
		"durable": prefix + "_durable", "retention": "limits", "fetch_wait": "200ms"})
	b, err := newBroker(ctxT(t), cfg)
	require.NoError(t, err)
	defer b.Close(ctxT(t))
	var msgs []sdk.Outgoing
	for i := range 5 {
		msgs = append(msgs, testMsg(t, fmt.Sprintf("c-%d", i)))
	}
	require.NoError(t, b.Kick(ctxT(t), msgs))
	st, err := b.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	l := st.(*listener)
	got := recvN(t, l, 3)
	require.NoError(t, l.Settle(ctxT(t), settlementsOf(sdk.SettleAck, got)))
	js := jsFor(t, url)
	c, err := js.Consumer(ctxT(t), prefix, prefix+"_durable")
	require.NoError(t, err)
	eventually(t, "the ack floor reaches the third message", func() bool {
		ci, err := c.Info(ctxT(t))
		return err == nil && ci.AckFloor.Stream == 3
	})
	l.compact(ctxT(t), false)
	require.Equal(t, uint64(2), streamMsgs(t, js, prefix), "the two messages above the ack floor stay")
	require.NoError(t, st.Close())
}

func settlementsOf(kind sdk.SettleKind, ds []sdk.Delivery) []sdk.Settlement {
	out := make([]sdk.Settlement, len(ds))
	for i, d := range ds {
		out[i] = sdk.Settlement{DeliveryID: d.ID, Kind: kind}
	}
	return out
}

// deadReasons reads the dead-letter stream of prefix: task id (or the
// body, when it is no message) -> reason.
func deadReasons(t *testing.T, js jetstream.JetStream, prefix string, want int) map[string]string {
	t.Helper()
	var dead jetstream.Stream
	eventually(t, fmt.Sprintf("%d dead letter(s)", want), func() bool {
		var err error
		if dead, err = js.Stream(ctxT(t), prefix+"_dead"); err != nil {
			return false // created with the first dead letter
		}
		info, err := dead.Info(ctxT(t))
		return err == nil && info.State.Msgs == uint64(want)
	})
	out := map[string]string{}
	for seq := uint64(1); seq <= uint64(want); seq++ {
		m, err := dead.GetMsg(ctxT(t), seq)
		require.NoError(t, err)
		key := string(m.Data)
		if msg, err := wire.DecodeMessage(m.Data); err == nil {
			key = msg.TaskID
		}
		out[key] = m.Header.Get(hdrReason)
	}
	return out
}

// TestExistingConsumerMaxDeliver: on a consumer created elsewhere with a
// server-side MaxDeliver, a nack of the last delivery the server allows is
// dead-lettered instead of being dropped by the server.
func TestExistingConsumerMaxDeliver(t *testing.T) {
	url := natsURL(t)
	t.Parallel()
	prefix, subject, js := existingStream(t, url)
	_, err := js.CreateConsumer(ctxT(t), prefix, jetstream.ConsumerConfig{Durable: prefix + "_durable", FilterSubject: subject,
		AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 2})
	require.NoError(t, err)
	b := sdktest.Launch(t, sdk.KindBroker, testBrokerConfig(t, url, prefix, nil)).Broker()
	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{testMsg(t, "md-1")}))
	st, err := b.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	defer st.Close()
	for attempt := 1; attempt <= 2; attempt++ {
		ds, err := st.Recv(ctxT(t), 1)
		require.NoError(t, err)
		require.Equal(t, attempt, ds[0].Attempt)
		require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleNack}}))
	}
	require.Equal(t, map[string]string{"md-1": "nacked at the consumer's max_deliver (2)"}, deadReasons(t, js, prefix, 1))
}

// TestMalformedDelayedMessageIsDeadLettered: a message in the delay stream
// without a due time or target is dead-lettered, not redelivered forever.
func TestMalformedDelayedMessageIsDeadLettered(t *testing.T) {
	url := natsURL(t)
	t.Parallel()
	prefix := testNames(t, url)
	b := sdktest.Launch(t, sdk.KindBroker, testBrokerConfig(t, url, prefix, nil)).Broker()
	st, err := b.Listen(ctxT(t), sdk.ListenRequest{}) // creates the delay stream, runs the mover
	require.NoError(t, err)
	defer st.Close()
	js := jsFor(t, url)
	_, err = js.PublishMsg(ctxT(t), &nats.Msg{Subject: prefix + "_tasks_delayed", Data: []byte("no headers")})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"no headers": "delayed message without Taskiq-Due or Taskiq-Target header"},
		deadReasons(t, js, prefix, 1))
}
