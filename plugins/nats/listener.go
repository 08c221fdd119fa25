package taskiqnats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/taskiq-go/taskiq/internal/backoff"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// queueSub is one queue of a listener: its durable consumer and the pull
// request in flight, if any.
type queueSub struct {
	name    string // as deliveries report it
	subject string
	cons    jetstream.Consumer
	weight  int
	// ackWait is the consumer's AckWait: the lease every delivery gets.
	ackWait time.Duration
	// serverMaxDeliver is the consumer's own MaxDeliver (an existing
	// consumer may have one); 0 when unlimited.
	serverMaxDeliver int
}

// GrantedLease is the lease JetStream grants every delivery and every
// extension: the shortest AckWait of the listener's consumers, whatever an
// extension asks for (sdk.LeaseGranter).
func (l *listener) GrantedLease() time.Duration {
	var lease time.Duration
	for _, q := range l.queues {
		if lease == 0 || q.ackWait < lease {
			lease = q.ackWait
		}
	}
	return lease
}

// Interface guards
var _ sdk.LeaseGranter = (*listener)(nil)

// held is an unsettled delivery.
type held struct {
	q       *queueSub
	body    []byte
	seq     uint64
	attempt int
}

// listener is one worker's delivery stream. Deliveries are pulled on
// demand: each pull asks for at most the credit the worker gave (Recv's
// max), so nothing waits in this process with its lease running. A
// delivery's id is its JetStream reply subject, which any connection can
// settle: ids stay valid across a reconnect or a restart of the plugin.
type listener struct {
	b      *broker
	queues []*queueSub
	strict bool

	ctx  context.Context // done when the listener is closed
	stop context.CancelFunc
	wg   sync.WaitGroup

	recvMu sync.Mutex
	rr     []int // smooth weighted round-robin state
	ended  error
	// arrivals carries the messages of the pulls in flight; pullEnded
	// wakes Recv when one ends.
	arrivals  chan arrival
	pullEnded chan struct{}
	// outstanding is what the pulls in flight may still bring, counting
	// what waits in arrivals; pullErr the last error a pull ended with.
	outMu       sync.Mutex
	outstanding int
	pullErr     error
	// failingSince is when pulls began to fail in a row; zero while fine.
	failingSince time.Time

	heldMu sync.Mutex
	held   map[string]*held

	closeOnce sync.Once
}

// unavailableAfter is how long pulls may keep failing before the stream
// ends with sdk.ErrUnavailable, so the worker reopens it and reports itself
// not ready while that fails.
const unavailableAfter = 10 * time.Second

func newListener(ctx context.Context, b *broker, req sdk.ListenRequest) (*listener, error) {
	info, err := b.mainStream(ctx)
	if err != nil {
		return nil, err
	}
	qs := req.Queues
	if len(qs) == 0 {
		qs = []sdk.Queue{{}}
	}
	l := &listener{b: b, strict: req.StrictPriority, held: map[string]*held{},
		arrivals: make(chan arrival, arrivalsCap), pullEnded: make(chan struct{}, 1)}
	seen := map[string]bool{}
	for _, q := range qs {
		if err := validQueue(q.Name); err != nil {
			return nil, fmt.Errorf("nats listen: %w", err)
		}
		subject := b.opts.queueSubject(q.Name)
		if seen[subject] {
			continue
		}
		seen[subject] = true
		if err := checkCovered(info, subject, q.Name); err != nil {
			return nil, fmt.Errorf("nats listen: %w", err)
		}
		cons, err := b.consumer(ctx, b.opts.stream, b.opts.consumerName(q.Name), subject, b.opts.ackWait)
		if err != nil {
			return nil, err
		}
		ci := cons.CachedInfo()
		qs := &queueSub{name: b.opts.queueName(q.Name), subject: subject, cons: cons, weight: max(q.Weight, 1),
			ackWait: ci.Config.AckWait, serverMaxDeliver: max(ci.Config.MaxDeliver, 0)}
		if qs.ackWait <= 0 {
			qs.ackWait = 30 * time.Second // the server's default
		}
		if req.Lease > 0 && req.Lease != qs.ackWait {
			b.log.Debug("lease asked for differs from the consumer's ack_wait; deliveries report ack_wait",
				"asked", req.Lease.String(), "ack_wait", qs.ackWait.String(), "consumer", ci.Name)
		}
		l.queues = append(l.queues, qs)
	}
	l.rr = make([]int, len(l.queues))
	if _, err := b.delayStream(ctx); err != nil {
		return nil, err
	}
	delayCons, err := b.consumer(ctx, b.opts.delayStream, b.opts.delayDurable(), b.opts.delaySubject(), 30*time.Second)
	if err != nil {
		return nil, err
	}
	l.ctx, l.stop = context.WithCancel(context.Background())
	l.runCompactor()
	m := &delayMover{b: b, cons: delayCons, ctx: l.ctx}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		m.run()
	}()
	return l, nil
}

// order is the sequence in which queues are tried: strict keeps the listed
// order, weighted leads with the queue picked by smooth weighted
// round-robin.
func (l *listener) order() []*queueSub {
	if len(l.queues) == 1 || l.strict {
		return l.queues
	}
	total, best := 0, 0
	for i, q := range l.queues {
		l.rr[i] += q.weight
		total += q.weight
		if l.rr[i] > l.rr[best] {
			best = i
		}
	}
	l.rr[best] -= total
	out := append([]*queueSub{l.queues[best]}, l.queues[:best]...)
	return append(out, l.queues[best+1:]...)
}

// arrival is a message a pull brought, for the queue it came from.
type arrival struct {
	q   *queueSub
	msg jetstream.Msg
}

// arrivalsCap bounds the messages pulls hand over before Recv takes them;
// a full channel only makes the pulls wait.
const arrivalsCap = 1024

// Recv returns up to max deliveries, blocking until there is at least one.
//
// Pulls run in the background and hand their messages to the arrivals
// channel; Recv keeps requests in flight for the credit it is given (max)
// minus what is already requested, so a pull that is still waiting for
// messages never keeps the rest of the credit from being used, and nothing
// is requested beyond it.
func (l *listener) Recv(ctx context.Context, max int) ([]sdk.Delivery, error) {
	max = maxOr1(max)
	l.recvMu.Lock()
	defer l.recvMu.Unlock()
	bo := backoff.New(20*time.Millisecond, 2*time.Second)
	for {
		if l.ctx.Err() != nil {
			return nil, sdk.ErrClosed
		}
		if l.ended != nil {
			return nil, l.ended
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if out := l.takeArrived(ctx, nil, max); len(out) > 0 {
			return out, nil
		}
		if err := l.takePullErr(); err != nil {
			if end := l.pullFailed(err); end != nil {
				return nil, end
			}
			l.pause(ctx, bo)
			continue
		}
		qs := l.order()
		if want := max - l.requested(); want > 0 {
			if len(qs) > 1 {
				// Several queues: what each has now, in order, then a
				// short wait on the leading one.
				if out := l.pullNow(ctx, qs, want); len(out) > 0 {
					l.failingSince = time.Time{}
					return out, nil
				}
			}
			wait := l.b.opts.fetchWait
			if len(qs) > 1 {
				wait = min(wait, 100*time.Millisecond)
			}
			if err := l.pull(qs[0], want, wait); err != nil {
				if end := l.pullFailed(err); end != nil {
					return nil, end
				}
				l.pause(ctx, bo)
				continue
			}
		}
		select {
		case a := <-l.arrivals:
			if out := l.takeArrived(ctx, []arrival{a}, max); len(out) > 0 {
				l.failingSince = time.Time{}
				bo.Reset()
				return out, nil
			}
		case <-l.pullEnded:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.ctx.Done():
			return nil, sdk.ErrClosed
		}
	}
}

// takeArrived adds what already arrived (without waiting) to got, up to
// max, and admits it; the taken arrivals leave the requested count.
func (l *listener) takeArrived(ctx context.Context, got []arrival, max int) []sdk.Delivery {
	for len(got) < max {
		select {
		case a := <-l.arrivals:
			got = append(got, a)
			continue
		default:
		}
		break
	}
	if len(got) == 0 {
		return nil
	}
	l.outMu.Lock()
	l.outstanding -= len(got)
	l.outMu.Unlock()
	var out []sdk.Delivery
	for i := 0; i < len(got); {
		j := i + 1
		for j < len(got) && got[j].q == got[i].q {
			j++
		}
		msgs := make([]jetstream.Msg, 0, j-i)
		for _, a := range got[i:j] {
			msgs = append(msgs, a.msg)
		}
		out = append(out, l.admit(ctx, got[i].q, msgs)...)
		i = j
	}
	return out
}

// requested is how many messages pulls in flight may still bring.
func (l *listener) requested() int {
	l.outMu.Lock()
	defer l.outMu.Unlock()
	return l.outstanding
}

func (l *listener) takePullErr() error {
	l.outMu.Lock()
	defer l.outMu.Unlock()
	err := l.pullErr
	l.pullErr = nil
	return err
}

// pull starts a pull of up to n messages of q that waits up to wait on
// the server; its messages go to the arrivals channel as they come.
func (l *listener) pull(q *queueSub, n int, wait time.Duration) error {
	batch, err := q.cons.Fetch(n, jetstream.FetchMaxWait(wait))
	if err != nil {
		return err
	}
	l.outMu.Lock()
	l.outstanding += n
	l.outMu.Unlock()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		got := 0
		for m := range batch.Messages() {
			got++
			select {
			case l.arrivals <- arrival{q, m}:
			case <-l.ctx.Done():
				_ = m.Nak() // closed: let another worker have it now
			}
		}
		l.outMu.Lock()
		l.outstanding -= n - got
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) && l.ctx.Err() == nil {
			l.pullErr = err
		}
		l.outMu.Unlock()
		select {
		case l.pullEnded <- struct{}{}:
		default:
		}
	}()
	return nil
}

// pullNow takes what the queues have right now, in order, up to n.
func (l *listener) pullNow(ctx context.Context, qs []*queueSub, n int) []sdk.Delivery {
	var out []sdk.Delivery
	for _, q := range qs {
		if len(out) >= n {
			break
		}
		batch, err := q.cons.FetchNoWait(n - len(out))
		if err != nil {
			l.b.log.Debug("NATS pull failed", "queue", q.name, "error", err)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		out = append(out, l.admit(ctx, q, msgs)...)
	}
	return out
}

func maxOr1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// pause waits for bo's next delay; false when ctx ends or the listener
// closes first.
func (l *listener) pause(ctx context.Context, bo *backoff.Backoff) bool {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(l.ctx, cancel)
	defer stop()
	return bo.Wait(wctx)
}

// pullFailed records a failed pull; it returns the error that ends the
// stream once pulls have failed for unavailableAfter, nil to retry.
func (l *listener) pullFailed(err error) error {
	now := l.b.now()
	if l.failingSince.IsZero() {
		l.failingSince = now
	}
	werr := l.b.wrap("pull", err)
	if errors.Is(werr, sdk.ErrUnauthenticated) {
		l.ended = werr
		return werr
	}
	if now.Sub(l.failingSince) >= unavailableAfter {
		l.b.log.Error("NATS pulls keep failing; the delivery stream ends so that the worker reopens it",
			"for", now.Sub(l.failingSince).Round(time.Millisecond).String(), "error", werr)
		l.ended = fmt.Errorf("nats pulls failing for %s: %w: %w", now.Sub(l.failingSince).Round(time.Millisecond), sdk.ErrUnavailable, werr)
		return l.ended
	}
	l.b.log.Warn("NATS pull failed; retrying", "error", werr)
	return nil
}

// admit turns messages into deliveries. A message delivered more often
// than max_deliver is terminated and dead-lettered instead.
func (l *listener) admit(ctx context.Context, q *queueSub, msgs []jetstream.Msg) []sdk.Delivery {
	if len(msgs) == 0 {
		return nil
	}
	out := make([]sdk.Delivery, 0, len(msgs))
	now := l.b.now()
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			l.b.log.Error("message without JetStream metadata ignored", "subject", m.Subject(), "error", err)
			continue
		}
		attempt := int(meta.NumDelivered)
		h := &held{q: q, body: m.Data(), seq: meta.Sequence.Stream, attempt: attempt}
		if md := l.b.opts.maxDeliver; md > 0 && attempt > md {
			reason := fmt.Sprintf("exceeded max_deliver (%d)", md)
			if err := l.deadLetter(ctx, m.Reply(), h, reason); err != nil {
				l.b.log.Error("dead letter failed; the message comes back after its ack_wait", "error", err)
			}
			continue
		}
		l.heldMu.Lock()
		l.held[m.Reply()] = h
		l.heldMu.Unlock()
		out = append(out, sdk.Delivery{ID: m.Reply(), Body: m.Data(), Queue: q.name, Attempt: attempt,
			LeaseDeadline: now.Add(q.ackWait)})
	}
	return out
}

// deadLetter copies a message to the dead-letter stream, then terminates
// it. If the copy fails nothing is terminated: the message comes back.
func (l *listener) deadLetter(ctx context.Context, reply string, h *held, reason string) error {
	if err := l.b.deadLetter(ctx, h.q.name, h.body, h.seq, h.attempt, reason); err != nil {
		return err
	}
	return l.b.nc.Publish(reply, []byte("+TERM"))
}

func (l *listener) release(id string) *held {
	l.heldMu.Lock()
	defer l.heldMu.Unlock()
	h := l.held[id]
	delete(l.held, id)
	return h
}

// queueOf finds the queue of a delivery id that this listener did not hand
// out itself (one of a plugin process before a restart), by the consumer
// its reply subject names.
func (l *listener) queueOf(ref ackRef) *queueSub {
	if ref.stream != l.b.opts.stream {
		return nil
	}
	for _, q := range l.queues {
		if q.cons.CachedInfo().Name == ref.consumer {
			return q
		}
	}
	return nil
}

// Settle publishes one ack, nak, progress or term per settlement on the
// delivery's reply subject, then flushes once: a round trip for the batch.
// Dead letters are copied first and terminated once the copy is stored.
func (l *listener) Settle(ctx context.Context, ss []sdk.Settlement) error {
	var errs []error
	for _, st := range ss {
		ref, ok := parseAckReply(st.DeliveryID)
		if !ok {
			l.b.log.Warn("settlement for a delivery id that is not a JetStream reply subject ignored", "delivery_id", st.DeliveryID, "kind", st.Kind.String())
			continue
		}
		var h *held
		if st.Kind == sdk.SettleExtend {
			l.heldMu.Lock()
			h = l.held[st.DeliveryID]
			l.heldMu.Unlock()
		} else {
			h = l.release(st.DeliveryID)
		}
		if h == nil {
			q := l.queueOf(ref)
			if q == nil {
				l.b.log.Warn("settlement for a delivery of another stream or consumer ignored", "delivery_id", st.DeliveryID, "kind", st.Kind.String())
				continue
			}
			h = &held{q: q, seq: ref.streamSeq, attempt: ref.delivered}
		}
		var payload []byte
		switch st.Kind {
		case sdk.SettleAck:
			payload = []byte("+ACK")
		case sdk.SettleExtend:
			payload = []byte("+WPI")
		case sdk.SettleNack:
			if sm := h.q.serverMaxDeliver; sm > 0 && h.attempt >= sm {
				// The server would not deliver it again: keep it as a dead letter.
				if err := l.deadLetterRef(ctx, st.DeliveryID, h, fmt.Sprintf("nacked at the consumer's max_deliver (%d)", sm)); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			payload = []byte("-NAK")
			if st.Delay > 0 {
				payload = []byte(`-NAK {"delay": ` + strconv.FormatInt(st.Delay.Nanoseconds(), 10) + `}`)
			}
		case sdk.SettleDeadLetter:
			reason := st.Reason
			if reason == "" {
				reason = "dead-lettered by the worker"
			}
			if err := l.deadLetterRef(ctx, st.DeliveryID, h, reason); err != nil {
				errs = append(errs, err)
			}
			continue
		default:
			return fmt.Errorf("nats settle: unknown settlement kind %d for delivery %s", st.Kind, st.DeliveryID)
		}
		if err := l.b.nc.Publish(st.DeliveryID, payload); err != nil {
			errs = append(errs, l.b.wrap("settle", err))
		}
	}
	if l.b.nc.IsConnected() {
		fctx, cancel := context.WithTimeout(ctx, l.b.conn.requestTimeout)
		defer cancel()
		if err := l.b.nc.FlushWithContext(fctx); err != nil {
			// The settlements are in the reconnect buffer and go out when
			// the connection is back; an expired ack_wait redelivers.
			l.b.log.Debug("flush of settlements failed", "error", err)
		}
	}
	return errors.Join(errs...)
}

// deadLetterRef dead-letters a delivery, reading its body back from the
// stream by sequence when this listener does not hold it.
func (l *listener) deadLetterRef(ctx context.Context, reply string, h *held, reason string) error {
	if h.body == nil {
		rctx, cancel := l.b.reqCtx(ctx)
		raw, err := l.b.js.Stream(rctx, l.b.opts.stream)
		if err == nil {
			var m *jetstream.RawStreamMsg
			m, err = raw.GetMsg(rctx, h.seq)
			if err == nil {
				h.body = m.Data
			}
		}
		cancel()
		if err != nil {
			return l.b.wrap(fmt.Sprintf("read message %d back for its dead letter", h.seq), err)
		}
	}
	return l.deadLetter(ctx, reply, h, reason)
}

// Close ends the stream: every delivery it holds, and those still arriving
// on a pull in flight, is nacked so that another worker gets it now rather
// than after its ack_wait.
func (l *listener) Close() error {
	l.closeOnce.Do(func() {
		l.stop()
		// A barrier: once passed, no Recv is starting a pull.
		l.recvMu.Lock()
		l.ended = sdk.ErrClosed
		l.recvMu.Unlock()
		l.heldMu.Lock()
		for id := range l.held {
			_ = l.b.nc.Publish(id, []byte("-NAK"))
		}
		l.held = map[string]*held{}
		l.heldMu.Unlock()
		// Pulls in flight end within fetch_wait; they nak what they bring.
		l.wg.Wait()
		for {
			select {
			case a := <-l.arrivals:
				_ = a.msg.Nak()
				continue
			default:
			}
			break
		}
		_ = l.b.nc.FlushTimeout(time.Second)
		l.b.forget(l)
	})
	return nil
}

// Interface guards
var _ sdk.Stream = (*listener)(nil)
