package taskiqredis

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq/internal/backoff"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// held is what a listener remembers about an unsettled delivery, so a nack
// or dead letter can re-send the body without reading it back from Redis.
type held struct {
	queue   *queueSpec
	entryID string
	body    []byte
	attempt int
	// expired is set once a reclaim found the lease run out while held.
	expired bool
}

type fetchResult struct {
	ds  []sdk.Delivery
	err error
}

// listenerBase is what the three modes share: on-demand fetching with a
// cancellable Recv, the held-delivery table, queue rotation and the
// delayed-message mover.
//
// Redis blocking reads cannot be interrupted by a context, so a Recv whose
// context ends leaves its read running; the next Recv picks up its result.
// Nothing is read ahead of demand, so leases start when a worker asked.
type listenerBase struct {
	b      *broker
	queues []*queueSpec
	strict bool

	ctx  context.Context // done when the listener is closed
	stop context.CancelFunc
	wg   sync.WaitGroup

	recvMu   sync.Mutex
	inflight chan fetchResult
	buffer   []sdk.Delivery

	heldMu sync.Mutex
	held   map[string]*held

	rrMu sync.Mutex
	rr   []int // smooth weighted round-robin state

	fetch func(ctx context.Context, max int) ([]sdk.Delivery, error)
	// ended is the error that ended the stream (set once a fetch failed):
	// every later Recv returns it instead of starting a new fetch.
	ended error

	// failingSince is when the calls of this listener began to fail as
	// unreachable, zero while the last one succeeded; see unreachable.
	// Counting from the first failure, not from the last success, keeps a
	// listener that made no call for a while (its worker busy, a pub/sub
	// reader waiting for room) from ending at its first failed call.
	okMu         sync.Mutex
	failingSince time.Time

	closeOnce sync.Once
}

func (l *listenerBase) init(b *broker, queues []*queueSpec, strict bool) {
	l.b, l.queues, l.strict = b, queues, strict
	l.ctx, l.stop = context.WithCancel(context.Background())
	l.held = map[string]*held{}
	l.rr = make([]int, len(queues))
}

// ok records a Redis call of this listener that succeeded: it ends the
// current outage, if any.
func (l *listenerBase) ok() {
	l.okMu.Lock()
	l.failingSince = time.Time{}
	l.okMu.Unlock()
}

// failed records a call of this listener that failed with err and returns
// for how long Redis has been unreachable (0 when err is an answer of
// Redis, which is reachable then).
func (l *listenerBase) failed(err error) time.Duration {
	if !isUnavailable(err) {
		l.ok()
		return 0
	}
	now := l.b.now()
	l.okMu.Lock()
	defer l.okMu.Unlock()
	if l.failingSince.IsZero() {
		l.failingSince = now
	}
	return now.Sub(l.failingSince)
}

// unreachable is called by a fetch loop whose Redis call failed with err.
// Once the listener's calls have been failing as unreachable for
// unavailable_after, none succeeding in between, it logs
// that once at error level and returns the error that ends the stream
// (wrapping sdk.ErrUnavailable), so the host sees the outage: it reopens
// the stream, and a Listen that keeps failing makes the worker not ready.
// Before that, and for errors that do not mean "unreachable", it returns
// nil and the loop retries. Entries the listener holds stay pending.
func (l *listenerBase) unreachable(op string, err error) error {
	down := l.failed(err)
	if down < l.b.opts.unavailableAfter {
		return nil
	}
	d := down.Round(time.Millisecond).String()
	l.b.log.Error("redis unreachable; the delivery stream ends so that the worker reopens it (unavailable_after)",
		"addr", l.b.addr, "unreachable_for", d, "unavailable_after", l.b.opts.unavailableAfter.String(),
		"op", op, "error", wrapErr(op, l.b.addr, err))
	return fmt.Errorf("redis at %s unreachable for %s (unavailable_after %s): %w",
		l.b.addr, d, l.b.opts.unavailableAfter, wrapErr(op, l.b.addr, err))
}

// Recv returns the next batch, at most max deliveries.
func (l *listenerBase) Recv(ctx context.Context, max int) ([]sdk.Delivery, error) {
	if max <= 0 {
		max = l.b.opts.count
	}
	l.recvMu.Lock()
	defer l.recvMu.Unlock()
	if len(l.buffer) > 0 {
		return l.take(nil, max), nil
	}
	if l.ended != nil {
		return nil, l.ended
	}
	if l.inflight == nil {
		if l.ctx.Err() != nil {
			return nil, sdk.ErrClosed
		}
		ch := make(chan fetchResult, 1)
		l.inflight = ch
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			ds, err := l.fetch(l.ctx, max)
			ch <- fetchResult{ds, err}
		}()
	}
	select {
	case r := <-l.inflight:
		l.inflight = nil
		if r.err != nil {
			l.ended = r.err
			return nil, r.err
		}
		return l.take(r.ds, max), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.ctx.Done():
		return nil, sdk.ErrClosed
	}
}

// take returns up to max deliveries from the buffer and ds, buffering the rest.
func (l *listenerBase) take(ds []sdk.Delivery, max int) []sdk.Delivery {
	all := append(l.buffer, ds...)
	if len(all) <= max {
		l.buffer = nil
		return all
	}
	out := all[:max:max]
	l.buffer = append([]sdk.Delivery(nil), all[max:]...)
	return out
}

// hold remembers a delivery until it is settled.
func (l *listenerBase) hold(id string, h *held) {
	l.heldMu.Lock()
	l.held[id] = h
	l.heldMu.Unlock()
}

// release forgets a settled delivery and returns what was held.
func (l *listenerBase) release(id string) *held {
	l.heldMu.Lock()
	defer l.heldMu.Unlock()
	h := l.held[id]
	delete(l.held, id)
	return h
}

// markExpired records that a held delivery's lease ran out; it reports
// whether this is the first time.
func (l *listenerBase) markExpired(id string) bool {
	l.heldMu.Lock()
	defer l.heldMu.Unlock()
	h := l.held[id]
	if h == nil || h.expired {
		return false
	}
	h.expired = true
	return true
}

func (l *listenerBase) lookup(id string) *held {
	l.heldMu.Lock()
	defer l.heldMu.Unlock()
	return l.held[id]
}

// order is the sequence in which the queues are tried for one read: strict
// keeps the declared order; weighted starts with the queue picked by smooth
// weighted round-robin (a queue of weight 3 leads three times as often as
// one of weight 1) and tries the others after it.
func (l *listenerBase) order() []*queueSpec {
	if len(l.queues) == 1 || l.strict {
		return l.queues
	}
	l.rrMu.Lock()
	total, best := 0, 0
	for i, q := range l.queues {
		l.rr[i] += q.weight
		total += q.weight
		if l.rr[i] > l.rr[best] {
			best = i
		}
	}
	l.rr[best] -= total
	l.rrMu.Unlock()
	out := make([]*queueSpec, 0, len(l.queues))
	out = append(out, l.queues[best])
	for i, q := range l.queues {
		if i != best {
			out = append(out, q)
		}
	}
	return out
}

// runMover moves due delayed messages of every listened queue to their
// queue, every delay_poll (sooner when the next message is due earlier).
func (l *listenerBase) runMover() {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		bo := newBackoff()
		for {
			wait := l.b.opts.delayPoll
			failed := false
			for _, q := range l.queues {
				_, next, err := l.b.moveDue(l.ctx, l.b.opts.mode, q.name, l.b.now())
				if err != nil {
					if l.ctx.Err() != nil {
						return
					}
					l.failed(err)
					l.b.log.Warn("moving delayed messages failed; retrying", "queue", q.name, "error", wrapErr("move delayed", l.b.addr, err))
					failed = true
					continue
				}
				l.ok()
				if !next.IsZero() {
					if d := next.Sub(l.b.now()); d < wait {
						wait = max(d, time.Millisecond)
					}
				}
			}
			if failed {
				if !bo.Wait(l.ctx) {
					return
				}
				continue
			}
			bo.Reset()
			if !sleep(l.ctx, wait) {
				return
			}
		}
	}()
}

// retryLoop runs op until it succeeds or the listener closes, backing off
// between failures; listener loops never give up on Redis.
func (l *listenerBase) retryLoop(ctx context.Context, what string, op func() error) error {
	bo := newBackoff()
	for {
		err := op()
		if err == nil {
			l.ok()
			return nil
		}
		if !isUnavailable(err) {
			l.ok() // Redis answered, if only with an error
			return wrapErr(what, l.b.addr, err)
		}
		l.failed(err)
		l.b.log.Warn("redis unavailable; retrying", "op", what, "error", wrapErr(what, l.b.addr, err))
		if !l.pause(ctx, bo) {
			if ctx.Err() != nil {
				return fmt.Errorf("redis %s: %w", what, ctx.Err())
			}
			return fmt.Errorf("redis %s: %w", what, sdk.ErrClosed)
		}
	}
}

// pushOp is a nack or dead letter of a message that exists only in this
// process: list mode popped it, pub/sub mode received a broadcast.
type pushOp struct {
	h  *held
	st sdk.Settlement
}

// pushBack writes nacked messages back to their queue (or delayed set) and
// dead letters to the dead-letter stream. No copy is left in Redis, so
// giving up loses the message: each write that failed because Redis is
// unreachable or over maxmemory is retried (that write only: the others
// are not sent twice) until it succeeds or the listener closes.
func (l *listenerBase) pushBack(ctx context.Context, ops []pushOp) error {
	bo := newBackoff()
	for len(ops) > 0 {
		pipe := l.b.client.Pipeline()
		cmds := make([]redis.Cmder, len(ops))
		now := l.b.now()
		for i, o := range ops {
			switch {
			case o.st.Kind == sdk.SettleDeadLetter:
				cmds[i] = l.b.addDeadLetter(ctx, pipe, o.h.queue.name, "", o.h.body, deadReason(o.st.Reason), o.h.attempt)
			case o.st.Delay > 0:
				cmds[i] = pipe.ZAdd(ctx, l.b.delayedKey(o.h.queue.name), redis.Z{Score: unixMilli(now.Add(o.st.Delay)),
					Member: delayedMember(0, o.h.body)})
			default:
				cmds[i] = pipe.LPush(ctx, o.h.queue.key, o.h.body)
			}
		}
		_, execErr := pipe.Exec(ctx)
		unsent := execErr != nil && cmdsCarryNoError(cmds)
		var failed []pushOp
		var lastErr error
		for i, o := range ops {
			err := cmds[i].Err()
			if unsent {
				err = execErr
			}
			if err != nil {
				failed, lastErr = append(failed, o), err
				continue
			}
			if o.st.Kind == sdk.SettleDeadLetter {
				l.b.log.Warn("message moved to dead-letter queue", "queue", o.h.queue.name,
					"dead_letter_queue", l.b.deadKey(o.h.queue.name), "attempt", o.h.attempt, "reason", deadReason(o.st.Reason))
			}
		}
		if len(failed) == 0 {
			l.ok()
			return nil
		}
		werr := wrapErr("settle", l.b.addr, lastErr)
		if !isUnavailable(lastErr) && !isOOM(lastErr) {
			l.b.log.Error("nack or dead letter failed; the message is lost (it existed only in this worker)", "messages", len(failed), "error", werr)
			return fmt.Errorf("%d nack/dead-letter settlement(s) failed and their messages are lost: %w", len(failed), werr)
		}
		l.b.log.Warn("nack or dead letter failed; the message exists only in this worker, retrying", "messages", len(failed), "error", werr)
		ops = failed
		if !l.pause(ctx, bo) {
			l.b.log.Error("listener closed while nacks or dead letters were being retried; the messages are lost", "messages", len(failed), "error", werr)
			return fmt.Errorf("%d nack/dead-letter settlement(s) not written before the listener closed; their messages are lost: %w", len(failed), werr)
		}
	}
	return nil
}

// authFailed logs that Redis refused the credentials while listening.
func (l *listenerBase) authFailed(op string, err error) {
	l.b.log.Error("redis authentication failed; the delivery stream ends (retrying cannot help: fix the credentials or the ACL)",
		"op", op, "error", wrapErr(op, l.b.addr, err))
}

// endErr is what a fetch loop returns when it stops on err: the
// authentication error itself (permanent, see ErrAuthFailed), else
// sdk.ErrClosed (the listener closed).
func (l *listenerBase) endErr(op string, err error) error {
	if isAuthError(err) {
		return wrapErr(op, l.b.addr, err)
	}
	return sdk.ErrClosed
}

// pause waits for bo's next delay; false when ctx ends or the listener
// closes first.
func (l *listenerBase) pause(ctx context.Context, bo *backoff.Backoff) bool {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(l.ctx, cancel)
	defer stop()
	return bo.Wait(wctx)
}

// closeBase stops the goroutines and waits for them; a blocking read in
// flight ends within one block interval.
func (l *listenerBase) closeBase() {
	l.closeOnce.Do(func() {
		l.stop()
		// A barrier: once it is passed, no Recv is starting a fetch.
		l.recvMu.Lock()
		//lint:ignore SA2001 the empty critical section is the barrier
		l.recvMu.Unlock()
		l.wg.Wait()
	})
}
