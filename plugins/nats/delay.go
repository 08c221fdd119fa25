package taskiqnats

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/taskiq-go/taskiq/internal/backoff"
)

// delayMover moves delayed kicks to their queue once due. Delayed kicks
// wait in the delay stream; the mover pulls them through a durable consumer
// shared by every listener. A message not yet due is nacked with the time
// it has left (NakWithDelay), so the server hands it back when it is due:
// nothing is polled and a long delay never holds up a short one. A due
// message is published to its target subject (with its Nats-Msg-Id, so a
// move repeated after a crash is dropped as a duplicate), then acked, which
// removes it from the work-queue delay stream.
//
// The NATS server this was built against (2.9) has no message schedules
// (server 2.12 adds them); this works on every JetStream server.
type delayMover struct {
	b    *broker
	cons jetstream.Consumer
	ctx  context.Context
}

const delayBatch = 100

func (m *delayMover) run() {
	bo := backoff.New(20*time.Millisecond, 2*time.Second)
	for m.ctx.Err() == nil {
		batch, err := m.cons.Fetch(delayBatch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			m.b.log.Warn("delay stream pull failed; retrying", "error", m.b.wrap("pull delayed", err))
			bo.Wait(m.ctx)
			continue
		}
		// Handle messages as they arrive, in groups of what is there: a
		// pull stays open up to a second waiting for more.
		msgs := batch.Messages()
		for open := true; open; {
			msg, ok := <-msgs
			if !ok {
				break
			}
			group := []jetstream.Msg{msg}
			for more := true; more; {
				select {
				case x, ok := <-msgs:
					if !ok {
						more, open = false, false
						break
					}
					group = append(group, x)
				default:
					more = false
				}
			}
			m.move(m.sort(group))
		}
		if err := batch.Error(); err != nil && m.ctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			m.b.log.Warn("delay stream pull failed; retrying", "error", m.b.wrap("pull delayed", err))
			bo.Wait(m.ctx)
		} else {
			bo.Reset()
		}
	}
}

// sort nacks the messages not yet due with the time they have left,
// dead-letters those without a due time or target, and returns the due ones.
func (m *delayMover) sort(msgs []jetstream.Msg) []jetstream.Msg {
	var due []jetstream.Msg
	for _, msg := range msgs {
		if m.ctx.Err() != nil {
			_ = msg.Nak()
			continue
		}
		at, err := strconv.ParseInt(msg.Headers().Get(hdrDue), 10, 64)
		target := msg.Headers().Get(hdrTarget)
		if err != nil || target == "" {
			m.b.log.Error("delayed message without a due time or target; moved to the dead-letter stream",
				"subject", msg.Subject())
			var seq uint64
			if meta, _ := msg.Metadata(); meta != nil {
				seq = meta.Sequence.Stream
			}
			if err := m.b.deadLetter(m.ctx, "", msg.Data(), seq, 0, "delayed message without Taskiq-Due or Taskiq-Target header"); err == nil {
				_ = msg.Term()
			}
			continue
		}
		if left := time.UnixMilli(at).Sub(m.b.now()); left > 0 {
			_ = msg.NakWithDelay(left)
			continue
		}
		due = append(due, msg)
	}
	return due
}

// move publishes the due messages to their targets and acks those stored.
func (m *delayMover) move(due []jetstream.Msg) {
	if len(due) == 0 {
		return
	}
	futures := make([]jetstream.PubAckFuture, len(due))
	for i, msg := range due {
		nm := &nats.Msg{Subject: msg.Headers().Get(hdrTarget), Data: msg.Data()}
		var opts []jetstream.PublishOpt
		if id := msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
			opts = append(opts, jetstream.WithMsgID(id))
		}
		f, err := m.b.js.PublishMsgAsync(nm, opts...)
		if err != nil {
			m.b.log.Warn("moving a due delayed message failed; it comes back after its ack_wait", "error", m.b.wrap("move delayed", err))
			continue
		}
		futures[i] = f
	}
	timeout := time.NewTimer(m.b.conn.requestTimeout)
	defer timeout.Stop()
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			_ = due[i].Ack()
		case err := <-f.Err():
			m.b.log.Warn("moving a due delayed message failed; retried", "error", m.b.wrap("move delayed", err))
			_ = due[i].Nak()
		case <-timeout.C:
			return // unacked: back after the consumer's ack_wait
		}
	}
}
