package taskiqredis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// pubsubListener subscribes to the queues as pub/sub channels, as
// taskiq-redis's pub/sub broker does: every listener receives every message
// published while it is subscribed; nothing is stored, so a message published
// while no one listens, or while the connection is down, is gone.
type pubsubListener struct {
	listenerBase
	ps      *redis.PubSub
	psClose sync.Once
	// msg carries what receive got; it is closed when receive ends, with
	// the reason in recvErr.
	msg     chan *redis.Message
	recvErr error
	seq     atomic.Uint64
}

func newPubSubListener(ctx context.Context, b *broker, queues []*queueSpec) (*pubsubListener, error) {
	channels := make([]string, len(queues))
	for i, q := range queues {
		channels[i] = q.name
	}
	ps := b.client.Subscribe(ctx, channels...)
	// Wait for the confirmations, so a message published after Listen
	// returns is received.
	for range channels {
		if _, err := ps.Receive(ctx); err != nil {
			_ = ps.Close()
			return nil, wrapErr("listen (SUBSCRIBE)", b.addr, err)
		}
	}
	l := &pubsubListener{ps: ps, msg: make(chan *redis.Message, 1024)}
	l.init(b, queues, false)
	l.fetch = l.fetchBatch
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.recvErr = l.receive()
		close(l.msg)
	}()
	return l, nil
}

// receive reads the subscription until the listener closes, the
// credentials are refused or Redis has been unreachable for
// unavailable_after, and returns why. go-redis's Channel would hide those
// errors (it retries forever), so the loop is ours: go-redis still
// reconnects and resubscribes on the next read after a broken connection.
// A read that hears nothing for one block interval sends a PING; a second
// silent interval with the PING unanswered counts as a failure, so a
// connection that went dead without closing is noticed too.
func (l *pubsubListener) receive() error {
	bo := newBackoff()
	pinged := false
	for {
		m, err := l.ps.ReceiveTimeout(l.ctx, l.b.opts.block)
		if l.ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
			return sdk.ErrClosed
		}
		if isTimeout(err) && !pinged {
			if err = l.ps.Ping(l.ctx); err == nil {
				pinged = true
				continue
			}
		}
		if err != nil {
			if isAuthError(err) {
				l.authFailed("receive", err)
				return l.endErr("receive", err)
			}
			if end := l.unreachable("receive", err); end != nil {
				return end
			}
			l.b.log.Warn("redis call failed; retrying", "op", "receive", "error", wrapErr("receive", l.b.addr, err))
			pinged = false
			if !bo.Wait(l.ctx) {
				return sdk.ErrClosed
			}
			continue
		}
		l.ok()
		bo.Reset()
		pinged = false
		if msg, ok := m.(*redis.Message); ok {
			select {
			case l.msg <- msg:
			case <-l.ctx.Done():
				return sdk.ErrClosed
			}
		}
	}
}

// isTimeout reports a read that hit its deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (l *pubsubListener) fetchBatch(ctx context.Context, max int) ([]sdk.Delivery, error) {
	var first *redis.Message
	select {
	case first = <-l.msg:
	case <-ctx.Done():
		return nil, sdk.ErrClosed
	}
	if first == nil {
		return nil, l.recvErr
	}
	out := []sdk.Delivery{l.deliver(first)}
	for len(out) < max {
		select {
		case m := <-l.msg:
			if m == nil {
				return out, nil
			}
			out = append(out, l.deliver(m))
		default:
			return out, nil
		}
	}
	return out, nil
}

func (l *pubsubListener) deliver(m *redis.Message) sdk.Delivery {
	q := l.queues[0]
	for _, c := range l.queues {
		if c.name == m.Channel {
			q = c
		}
	}
	id := strconv.FormatUint(l.seq.Add(1), 10)
	body := []byte(m.Payload)
	l.hold(id, &held{queue: q, body: body, attempt: 1})
	return sdk.Delivery{ID: id, Body: body, Queue: q.name, Attempt: 1}
}

// Settle: a dead letter is written to the dead-letter stream; a nack is
// dropped with a warning, because re-publishing would hand the message to
// every subscriber again; acks and extensions have nothing to do.
func (l *pubsubListener) Settle(ctx context.Context, ss []sdk.Settlement) error {
	var dead []pushOp
	for _, st := range ss {
		h := l.release(st.DeliveryID)
		switch st.Kind {
		case sdk.SettleAck, sdk.SettleExtend:
		case sdk.SettleNack:
			l.b.log.Warn("nack in pubsub mode drops the message: a broadcast cannot be redelivered to one worker", "delivery_id", st.DeliveryID)
		case sdk.SettleDeadLetter:
			if h != nil {
				dead = append(dead, pushOp{h: h, st: st})
			}
		default:
			return fmt.Errorf("redis settle: unknown settlement kind %d for delivery %s", st.Kind, st.DeliveryID)
		}
	}
	return l.pushBack(ctx, dead)
}

// Close unsubscribes. It is safe to call more than once.
func (l *pubsubListener) Close() error {
	var err error
	l.psClose.Do(func() {
		l.stop()
		err = l.ps.Close()
	})
	l.closeBase()
	l.b.forget(l)
	return err
}

// Interface guards
var _ sdk.Stream = (*pubsubListener)(nil)
