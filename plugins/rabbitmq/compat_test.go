package taskiqrabbitmq

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// pythonDeclares declares what taskiq-aio-pika declares at startup with
// its defaults (queue, exchange and dead-letter names aside), on raw
// channels. It returns the first refusal.
func pythonDeclares(t *testing.T, n names, layout string, queueArgs amqp.Table) error {
	t.Helper()
	conn, err := amqp.Dial(amqpURL(t))
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	durable := layout == compat06
	dl := n.queue + ".dead_letter"
	args := amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dl}
	dlArgs := amqp.Table{}
	if layout == compat06 {
		args["x-queue-type"] = "quorum"
		dlArgs["x-queue-type"] = "quorum"
	}
	for k, v := range queueArgs {
		args[k] = v
	}
	if err := ch.ExchangeDeclare(n.exchange, "topic", durable, false, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(dl, durable, false, false, false, dlArgs); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(n.queue, durable, false, false, false, args); err != nil {
		return err
	}
	key := n.queue
	if layout == compat05 {
		key = "#"
		if _, err := ch.QueueDeclare(n.queue+".delay", false, false, false, false,
			amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": n.queue}); err != nil {
			return err
		}
	}
	return ch.QueueBind(n.queue, key, n.exchange, false, nil)
}

// TestDeclarationsInteroperate: whichever side declares first, the other
// side's declarations go through: Python's queues are adopted (their
// arguments too: a native-layout broker does not insist on its own
// x-delivery-limit), and Python's declarations match what this plugin
// declared in the aio-pika layouts.
func TestDeclarationsInteroperate(t *testing.T) {
	for _, layout := range []string{compat05, compat06} {
		t.Run("python-first/"+layout, func(t *testing.T) {
			n := newNames(t)
			require.NoError(t, pythonDeclares(t, n, layout, nil))
			_, err := newTestBroker(t, n.config(t, map[string]any{"compat": layout, "queue_expires": "0s"}))
			require.NoError(t, err)
			require.NoError(t, pythonDeclares(t, n, layout, nil), "Python starts again after the Go broker")
		})
		t.Run("go-first/"+layout, func(t *testing.T) {
			n := newNames(t)
			_, err := newTestBroker(t, n.config(t, map[string]any{"compat": layout, "queue_expires": "0s"}))
			require.NoError(t, err)
			require.NoError(t, pythonDeclares(t, n, layout, nil), "Python starts after the Go broker")
		})
	}
	t.Run("native-adopts", func(t *testing.T) {
		n := newNames(t)
		require.NoError(t, pythonDeclares(t, n, compat06, nil))
		b, err := newTestBroker(t, n.config(t, map[string]any{"queue_expires": "0s"}))
		require.NoError(t, err, "a queue without x-delivery-limit is used as it is")
		_, has := b.topo.defaultQueue.args["x-delivery-limit"]
		require.False(t, has)
	})
	t.Run("priorities-adopted", func(t *testing.T) {
		n := newNames(t)
		// Python: Queue(type=QueueType.CLASSIC, max_priority=5)
		require.NoError(t, pythonDeclares(t, n, compat06, amqp.Table{"x-queue-type": "classic", "x-max-priority": int32(5)}))
		b, err := newTestBroker(t, n.config(t, map[string]any{"compat": compat06, "queue_expires": "0s"}))
		require.NoError(t, err)
		require.Contains(t, b.Capabilities(), sdk.CapPriority, "the adopted classic queue has priorities")
	})
}

// TestExplicitMismatchFailsAtStart: an argument the config sets that an
// existing queue contradicts fails the start, naming the argument, both
// values and the attribute.
func TestExplicitMismatchFailsAtStart(t *testing.T) {
	n := newNames(t)
	require.NoError(t, pythonDeclares(t, n, compat05, nil)) // a classic queue
	_, err := newTestBroker(t, n.config(t, map[string]any{"compat": compat05, "queue_type": "quorum", "queue_expires": "0s"}))
	require.Error(t, err)
	var ce *sdk.ConfigError
	require.True(t, errors.As(err, &ce), "a config error: %v", err)
	require.Equal(t, "queue_type", ce.Attribute)
	require.Contains(t, err.Error(), `x-queue-type = none, but the config asks for "quorum"`)

	_, err = newTestBroker(t, n.config(t, map[string]any{"compat": compat05, "max_priority": 3, "queue_expires": "0s"}))
	require.ErrorContains(t, err, `x-max-priority = none, but the config asks for "3"`)
	require.NoError(t, pythonDeclares(t, n, compat05, nil), "the failed starts changed nothing")
}

// TestPythonProducerGoWorker publishes as taskiq-aio-pika does and
// receives with a Go stream, and the reverse.
func TestPythonProducerGoWorker(t *testing.T) {
	body := []byte(`{"task_id":"t1","task_name":"my_task","labels":{},"args":[1],"kwargs":{}}`)
	for _, layout := range []string{compat05, compat06} {
		t.Run(layout, func(t *testing.T) {
			n := newNames(t)
			b, err := newTestBroker(t, n.config(t, map[string]any{"compat": layout}))
			require.NoError(t, err)
			st, err := b.Listen(ctxT(t), sdk.ListenRequest{})
			require.NoError(t, err)
			defer st.Close()

			key := n.queue // 0.6: the queue's name
			if layout == compat05 {
				key = "my_task" // 0.5: the task name, bound with #
			}
			ch := rawChannel(t)
			require.NoError(t, ch.PublishWithContext(ctxT(t), n.exchange, key, false, false, amqp.Publishing{
				Headers: amqp.Table{"task_id": "t1", "task_name": "my_task"}, DeliveryMode: amqp.Persistent, Body: body}))
			ds, err := st.Recv(ctxT(t), 1)
			require.NoError(t, err)
			require.Equal(t, body, ds[0].Body)
			require.Equal(t, 1, ds[0].Attempt)
			require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))

			// Go producer, Python-style consumer on the same queue.
			require.NoError(t, st.Close())
			require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{{TaskID: "t2", TaskName: "my_task", Body: body}}))
			msg := getOne(t, ch, n.queue)
			require.Equal(t, body, msg.Body)
			require.Equal(t, "t2", msg.Headers["task_id"])
			require.Equal(t, "my_task", msg.Headers["task_name"])
			require.Equal(t, amqp.Persistent, msg.DeliveryMode)
		})
	}
}

// getOne polls queue with basic.get until a message is there (bounded).
func getOne(t *testing.T, ch *amqp.Channel, queue string) amqp.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		msg, ok, err := ch.Get(queue, true)
		require.NoError(t, err)
		if ok {
			return msg
		}
		<-tick.C
	}
	t.Fatalf("no message arrived in queue %s", queue)
	return amqp.Delivery{}
}

// TestDeadLetterCarriesReason: a dead-lettered delivery lands in the
// dead-letter queue with the reason, its queue and attempt in headers.
func TestDeadLetterCarriesReason(t *testing.T) {
	n := newNames(t)
	b, err := newTestBroker(t, n.config(t, nil))
	require.NoError(t, err)
	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{{TaskID: "t1", TaskName: "x", Body: []byte(`{}`)}}))
	st, err := b.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	defer st.Close()
	ds, err := st.Recv(ctxT(t), 1)
	require.NoError(t, err)
	require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleDeadLetter, Reason: "bad input"}}))
	msg := getOne(t, rawChannel(t), n.queue+".dead_letter")
	require.Equal(t, []byte(`{}`), msg.Body)
	require.Equal(t, "bad input", msg.Headers[headerDeadReason])
	require.Equal(t, n.queue, msg.Headers[headerDeadQueue])
	require.EqualValues(t, 1, msg.Headers[headerAttempt])
	require.Equal(t, "t1", msg.Headers[headerTaskID])
}

// TestDeliveryLimitDeadLetters: a message whose consumers keep dying (a
// poison message crashing its worker) is dead-lettered by the server once
// the quorum queue's x-delivery-limit is reached, instead of looping.
func TestDeliveryLimitDeadLetters(t *testing.T) {
	n := newNames(t)
	b, err := newTestBroker(t, n.config(t, map[string]any{"delivery_limit": 1}))
	require.NoError(t, err)
	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{{TaskID: "poison", TaskName: "x", Body: []byte(`{}`)}}))
	for want := 1; want <= 2; want++ {
		st, err := b.Listen(ctxT(t), sdk.ListenRequest{})
		require.NoError(t, err)
		ds, err := st.Recv(ctxT(t), 1)
		require.NoError(t, err)
		require.Equal(t, want, ds[0].Attempt)
		require.NoError(t, st.Close()) // the worker died holding it
	}
	msg := getOne(t, rawChannel(t), n.queue+".dead_letter")
	require.Equal(t, "poison", msg.Headers[headerTaskID])
	require.Equal(t, "delivery_limit", msg.Headers["x-first-death-reason"])
}

// TestStaleDeliveryTagsAreDropped: when a stream's channel is lost, the
// stream opens a new one; settling a delivery of the old channel does
// nothing (its message is back in the queue and comes again as a new
// attempt) instead of acking whatever carries the same tag on the new
// channel.
func TestStaleDeliveryTagsAreDropped(t *testing.T) {
	n := newNames(t)
	b, err := newTestBroker(t, n.config(t, nil))
	require.NoError(t, err)
	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{{TaskID: "t1", TaskName: "x", Body: []byte(`{"n":1}`)}}))
	sst, err := b.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	defer sst.Close()
	st := sst.(*stream)
	old, err := st.Recv(ctxT(t), 1)
	require.NoError(t, err)

	st.mu.Lock()
	ch := st.ch
	st.mu.Unlock()
	require.NoError(t, ch.Close()) // as if the server closed it

	again, err := st.Recv(ctxT(t), 1)
	require.NoError(t, err)
	require.Equal(t, old[0].Body, again[0].Body)
	require.Equal(t, 2, again[0].Attempt, "redelivered as a new attempt")
	require.NotEqual(t, old[0].ID, again[0].ID, "a new channel's delivery has another id even with the same tag")
	// Tags restart at 1 on the new channel: the stale id must not ack the
	// new delivery.
	require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: old[0].ID, Kind: sdk.SettleAck}}))
	st.mu.Lock()
	_, stillHeld := st.held[mustTag(t, again[0].ID)]
	st.mu.Unlock()
	require.True(t, stillHeld, "the stale settlement left the new delivery alone")
	require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: again[0].ID, Kind: sdk.SettleAck}}))
	requireEmpty(t, n.queue)
}

func mustTag(t *testing.T, id string) uint64 {
	_, tag, err := parseDeliveryID(id)
	require.NoError(t, err)
	return tag
}

// requireEmpty waits (bounded) until queue holds no ready message, as a
// passive declaration counts them.
func requireEmpty(t *testing.T, queue string) {
	t.Helper()
	ch := rawChannel(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		require.NoError(t, err)
		if q.Messages == 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "queue %s still holds %d messages", queue, q.Messages)
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReconnects: when the connection drops, kicks wait for the redial
// and streams reopen their channel on the new connection.
func TestReconnects(t *testing.T) {
	n := newNames(t)
	b, err := newTestBroker(t, n.config(t, nil))
	require.NoError(t, err)
	st, err := b.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	defer st.Close()
	b.mu.Lock()
	conn, gen := b.conn, b.gen
	b.mu.Unlock()
	require.NoError(t, conn.Close())

	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{{TaskID: "t1", TaskName: "x", Body: []byte(`{}`)}}))
	b.mu.Lock()
	require.Greater(t, b.gen, gen, "the kick went out on a new connection")
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ds, err := st.Recv(ctx, 1)
	require.NoError(t, err, "the stream reopened its channel")
	require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))
}

// TestAcksBeforeCloseStick: acks settled right before the stream closes
// are not undone by the close. A quorum queue applies acks asynchronously;
// a channel closed right after its last acks used to reach the queue
// first, which then returned the acked messages.
func TestAcksBeforeCloseStick(t *testing.T) {
	n := newNames(t)
	b, err := newTestBroker(t, n.config(t, nil))
	require.NoError(t, err)
	const rounds, count = 10, 200
	for r := range rounds {
		msgs := make([]sdk.Outgoing, count)
		for i := range msgs {
			msgs[i] = sdk.Outgoing{TaskID: fmt.Sprint(r, "-", i), TaskName: "x", Body: []byte(`{}`)}
		}
		require.NoError(t, b.Kick(ctxT(t), msgs))
		st, err := b.Listen(ctxT(t), sdk.ListenRequest{Prefetch: count})
		require.NoError(t, err)
		var ss []sdk.Settlement
		for len(ss) < count {
			ds, err := st.Recv(ctxT(t), count)
			require.NoError(t, err)
			for _, d := range ds {
				ss = append(ss, sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleAck})
			}
		}
		require.NoError(t, st.Settle(ctxT(t), ss))
		require.NoError(t, st.Close())
	}
	q, err := rawChannel(t).QueueDeclarePassive(n.queue, true, false, false, false, nil)
	require.NoError(t, err)
	require.Zero(t, q.Messages, "acked messages came back after their stream closed")
}

// TestRefusedCredentials: a wrong password fails the start with
// ErrUnauthenticated, without the password in the message.
func TestRefusedCredentials(t *testing.T) {
	n := newNames(t)
	cfg := n.config(t, map[string]any{"password": "not-the-password"})
	_, err := newTestBroker(t, cfg)
	require.ErrorIs(t, err, sdk.ErrUnauthenticated)
	require.NotContains(t, err.Error(), "not-the-password")
}

// TestShortDelayOvertakesLongDelay: a message with a short delay kicked
// after one with a long delay is delivered first (each delay bucket is its
// own TTL queue, so nothing waits behind a longer delay), and not before
// its own delay.
func TestShortDelayOvertakesLongDelay(t *testing.T) {
	n := newNames(t)
	b, err := newTestBroker(t, n.config(t, nil))
	require.NoError(t, err)
	st, err := b.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	defer st.Close()
	const long, short = 20 * time.Second, 300 * time.Millisecond
	start := time.Now()
	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{{TaskID: "long", TaskName: "x", Body: []byte(`"long"`), Delay: long}}))
	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{{TaskID: "short", TaskName: "x", Body: []byte(`"short"`), Delay: short}}))
	ctx, cancel := context.WithTimeout(context.Background(), long-time.Second)
	defer cancel()
	ds, err := st.Recv(ctx, 1)
	require.NoError(t, err, "the short delay must not wait behind the long one")
	require.Equal(t, `"short"`, string(ds[0].Body))
	require.GreaterOrEqual(t, time.Since(start), short-50*time.Millisecond)
	require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))
	_, _ = rawChannel(t).QueueDelete(n.queue+".delay.20000", false, false, false)
}

// TestPythonDelayQueue: a delayed message a taskiq-aio-pika producer puts
// into its delay queue (per-message expiration, default exchange) reaches
// the Go worker through the declarations of this plugin.
func TestPythonDelayQueue(t *testing.T) {
	for _, layout := range []string{compat05, compat06} {
		t.Run(layout, func(t *testing.T) {
			n := newNames(t)
			delayQueue := n.queue + ".delay" // always declared by 0.5, opted into in 0.6
			extra := map[string]any{"compat": layout}
			if layout == compat06 {
				extra["delay_queue"] = delayQueue
			}
			b, err := newTestBroker(t, n.config(t, extra))
			require.NoError(t, err)
			st, err := b.Listen(ctxT(t), sdk.ListenRequest{})
			require.NoError(t, err)
			defer st.Close()
			body := []byte(`{"task_id":"d1","task_name":"my_task","labels":{"delay":"0.2"},"args":[],"kwargs":{}}`)
			require.NoError(t, rawChannel(t).PublishWithContext(ctxT(t), "", delayQueue, false, false, amqp.Publishing{
				Headers: amqp.Table{"task_id": "d1", "task_name": "my_task"}, DeliveryMode: amqp.Persistent,
				Expiration: "200", Body: body}))
			ds, err := st.Recv(ctxT(t), 1)
			require.NoError(t, err)
			require.Equal(t, body, ds[0].Body)
			require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))
		})
	}
}

// TestDoubleAckKeepsTheChannel: settling a delivery twice does not send a
// second ack (the server would close the channel and redeliver everything
// unacked on it).
func TestDoubleAckKeepsTheChannel(t *testing.T) {
	n := newNames(t)
	b, err := newTestBroker(t, n.config(t, nil))
	require.NoError(t, err)
	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{{TaskID: "a", TaskName: "x", Body: []byte(`"a"`)}, {TaskID: "b", TaskName: "x", Body: []byte(`"b"`)}}))
	sst, err := b.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	defer sst.Close()
	st := sst.(*stream)
	var ds []sdk.Delivery
	for len(ds) < 2 {
		got, err := st.Recv(ctxT(t), 2)
		require.NoError(t, err)
		ds = append(ds, got...)
	}
	st.mu.Lock()
	ch := st.ch
	st.mu.Unlock()
	ack := []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}
	require.NoError(t, st.Settle(ctxT(t), ack))
	require.NoError(t, st.Settle(ctxT(t), ack))
	require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[1].ID, Kind: sdk.SettleAck}}))
	requireEmpty(t, n.queue)
	require.False(t, ch.IsClosed(), "the channel survived the repeated settlement")
}
