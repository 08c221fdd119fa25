package taskiqredis

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// listListener pops from Redis lists exactly as taskiq-redis does (LPUSH by
// producers, BRPOP by workers). A popped message exists only in the worker's
// memory: a worker that dies loses it. That is at-most-once delivery, and why
// this mode declares neither "ackable" nor "lease".
//
// Each message handed out leaves a running record (listrunning.go) until it
// is settled, so the inspector lists and counts it as running.
type listListener struct {
	listenerBase
	consumer string
	seq      atomic.Uint64
}

func newListListener(b *broker, queues []*queueSpec, strict bool) *listListener {
	l := &listListener{consumer: b.nextConsumerName()}
	l.init(b, queues, strict)
	l.fetch = l.fetchBatch
	l.runMover()
	if b.opts.runningRecords {
		l.runRenewer()
	}
	return l
}

func (l *listListener) fetchBatch(ctx context.Context, max int) ([]sdk.Delivery, error) {
	bo := newBackoff()
	n := min(max, l.b.opts.count)
	for {
		if ctx.Err() != nil {
			return nil, sdk.ErrClosed
		}
		ds, err := l.pop(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				return nil, sdk.ErrClosed
			}
			if isAuthError(err) {
				l.authFailed("pop", err)
				return nil, l.endErr("pop", err)
			}
			if end := l.unreachable("pop", err); end != nil {
				return nil, end
			}
			l.b.log.Warn("redis call failed; retrying", "op", "pop", "error", wrapErr("pop", l.b.addr, err))
			if !bo.Wait(ctx) {
				return nil, sdk.ErrClosed
			}
			continue
		}
		l.ok()
		bo.Reset()
		if len(ds) > 0 {
			return ds, nil
		}
	}
}

// pop takes up to n messages and records them as running (listrunning.go):
// popScript pops from the first non-empty queue, in strict or weighted
// order, in one round trip; when every queue is empty, BRPOP waits for a
// message (BRPOP serves the first non-empty key) and popScript then
// records it and pops the rest of the batch from the same queue.
func (l *listListener) pop(ctx context.Context, n int) ([]sdk.Delivery, error) {
	qs := l.active(ctx, l.order())
	if len(qs) == 0 {
		l.idle(ctx)
		return nil, nil
	}
	if !l.b.opts.runningRecords {
		return l.popPlain(ctx, qs, n)
	}
	if _, ds, err := l.popRecorded(ctx, qs, n, nil); err != nil || len(ds) > 0 {
		return ds, err
	}
	block := l.b.opts.block
	if len(qs) > 1 && l.b.opts.clusterHashes {
		// One BRPOP cannot span hash slots: wait briefly on the first.
		qs = qs[:1]
		block = min(block, 100*time.Millisecond)
	}
	q, msg, err := l.waitPop(ctx, qs, block)
	if q == nil || err != nil {
		return nil, err
	}
	_, ds, err := l.popRecorded(ctx, []*queueSpec{q}, n, &msg)
	if err != nil || len(ds) == 0 {
		// The popped message is ours already; deliver it (without a
		// running record) and let the next fetch deal with the error.
		l.b.log.Warn("redis call failed", "op", "pop", "error", wrapErr("pop", l.b.addr, err))
		return l.deliver(q, []string{msg}), nil
	}
	return ds, nil
}

// waitPop waits up to block in one BRPOP over qs and returns the queue it
// popped from and the message; a nil queue when the wait ended empty.
func (l *listListener) waitPop(ctx context.Context, qs []*queueSpec, block time.Duration) (*queueSpec, string, error) {
	keys := make([]string, len(qs))
	for i, q := range qs {
		keys[i] = q.key
	}
	kv, err := l.brpop(ctx, block, keys)
	if err == redis.Nil {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	for _, q := range qs {
		if q.key == kv[0] {
			return q, kv[1], nil
		}
	}
	return qs[0], kv[1], nil
}

// popPlain is pop with running_records = false, as taskiq-redis pops:
// BRPOP over the queues, then RPOP COUNT for the rest of the batch from
// the same queue.
func (l *listListener) popPlain(ctx context.Context, qs []*queueSpec, n int) ([]sdk.Delivery, error) {
	block := l.b.opts.block
	if len(qs) > 1 && l.b.opts.clusterHashes {
		// One BRPOP cannot span hash slots: try each queue without
		// blocking, then wait briefly on the first.
		for _, q := range qs {
			vals, err := l.b.client.RPopCount(ctx, q.key, n).Result()
			if err != nil && err != redis.Nil {
				return nil, err
			}
			if len(vals) > 0 {
				return l.deliver(q, vals), nil
			}
		}
		qs = qs[:1]
		block = min(block, 100*time.Millisecond)
	}
	q, msg, err := l.waitPop(ctx, qs, block)
	if q == nil || err != nil {
		return nil, err
	}
	vals := []string{msg}
	if n > 1 {
		more, err := l.b.client.RPopCount(ctx, q.key, n-1).Result()
		if err != nil && err != redis.Nil {
			// The popped message is ours already; deliver it and let the
			// next fetch deal with the error.
			l.b.log.Warn("redis call failed", "op", "RPOP", "error", wrapErr("pop", l.b.addr, err))
		}
		vals = append(vals, more...)
	}
	return l.deliver(q, vals), nil
}

// deliver holds and returns the deliveries of vals, with fresh ids.
func (l *listListener) deliver(q *queueSpec, vals []string) []sdk.Delivery {
	return l.deliverFrom(q, vals, l.seq.Add(uint64(len(vals)))-uint64(len(vals))+1)
}

// brpop is BRPOP with a sub-second timeout when block asks for one: the
// go-redis helper rounds timeouts up to whole seconds, Redis >= 6 accepts
// fractions.
func (l *listListener) brpop(ctx context.Context, block time.Duration, keys []string) ([]string, error) {
	if block >= time.Second {
		return l.b.client.BRPop(ctx, block, keys...).Result()
	}
	args := make([]any, 0, len(keys)+2)
	args = append(args, "BRPOP")
	for _, k := range keys {
		args = append(args, k)
	}
	args = append(args, strconv.FormatFloat(block.Seconds(), 'f', 3, 64))
	return l.b.client.Do(ctx, args...).StringSlice()
}

// deliverFrom holds and returns the deliveries of vals, with the delivery
// ids seq, seq+1, ...
func (l *listListener) deliverFrom(q *queueSpec, vals []string, seq uint64) []sdk.Delivery {
	out := make([]sdk.Delivery, len(vals))
	for i, v := range vals {
		id := strconv.FormatUint(seq+uint64(i), 10)
		body := []byte(v)
		l.hold(id, &held{queue: q, body: body, attempt: 1})
		out[i] = sdk.Delivery{ID: id, Body: body, Queue: q.name, Attempt: 1}
	}
	return out
}

// Settle: acks and lease extensions have nothing to do (the message left
// Redis when it was popped); a nack pushes the body back (or into the
// delayed set); a dead letter goes to the dead-letter stream.
//
// The running records of the settled deliveries are removed after that,
// in one pipeline (an ack's only round trip).
func (l *listListener) Settle(ctx context.Context, ss []sdk.Settlement) error {
	var ops []pushOp
	records := map[*queueSpec][]string{}
	for _, st := range ss {
		switch st.Kind {
		case sdk.SettleAck:
			if h := l.release(st.DeliveryID); h != nil {
				records[h.queue] = append(records[h.queue], l.recordField(st.DeliveryID))
			}
		case sdk.SettleExtend:
		case sdk.SettleNack, sdk.SettleDeadLetter:
			h := l.release(st.DeliveryID)
			if h == nil {
				l.b.log.Warn("settlement for an unknown delivery ignored", "delivery_id", st.DeliveryID, "kind", st.Kind.String())
				continue
			}
			records[h.queue] = append(records[h.queue], l.recordField(st.DeliveryID))
			ops = append(ops, pushOp{h: h, st: st})
		default:
			return fmt.Errorf("redis settle: unknown settlement kind %d for delivery %s", st.Kind, st.DeliveryID)
		}
	}
	err := l.pushBack(ctx, ops)
	if l.b.opts.runningRecords {
		l.unrecord(ctx, records)
	}
	return err
}

// Close stops the listener. Messages already popped and not settled are lost
// (at-most-once); their running records expire with their lease.
func (l *listListener) Close() error {
	l.closeBase()
	l.b.forget(l)
	return nil
}

// Interface guards
var _ sdk.Stream = (*listListener)(nil)
