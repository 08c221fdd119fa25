package taskiqrabbitmq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskiq-go/taskiq/internal/backoff"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// stream is one worker's delivery stream: a channel of its own with a QoS
// prefetch equal to the credit window and one consumer per queue.
//
// Delivery tags belong to a channel: when the channel (or the connection)
// is lost the server returns every unacked message to its queue, and a tag
// of the old channel names nothing, or another message, on the new one. A
// delivery's id therefore carries the generation of its channel; Recv
// drops what a lost channel left in the buffer, and Settle ignores ids of
// an older generation (their messages are already back in the queue and
// will be delivered again as a new attempt).
type stream struct {
	b        *broker
	queues   []string
	prefetch int

	out chan item // buffered deliveries, filled by the consumers

	mu   sync.Mutex
	ch   *amqp.Channel
	gen  uint64              // channel generation, 0 while none is open
	held map[uint64]held     // unsettled deliveries of the current channel
	err  error               // why the stream ended on its own
	down time.Time           // since when no channel could be opened
	cons map[string]struct{} // consumer tags of the current channel

	// settling is held (read) by every Settle under way: closing the
	// channel waits for them, so that acks settled while the stream (or
	// the broker) is being closed reach the server instead of being undone
	// by the close.
	settling sync.RWMutex

	ackMu sync.Mutex
	acks  ackWindow

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

type item struct {
	d     amqp.Delivery
	gen   uint64
	queue string
}

// held is what a nack or dead letter needs to publish the message again.
type held struct {
	queue    string
	body     []byte
	headers  amqp.Table
	priority uint8
	attempt  int
}

// Listen opens a stream on the requested queues (the default queue when
// none). Weights and StrictPriority do not apply: RabbitMQ pushes from
// every consumer as long as the prefetch window allows.
func (b *broker) Listen(ctx context.Context, req sdk.ListenRequest) (sdk.Stream, error) {
	queues := make([]string, 0, len(req.Queues))
	seen := map[string]bool{}
	for _, q := range req.Queues {
		name := q.Name
		if name == "" {
			name = b.o.queue
		}
		if !seen[name] {
			seen[name] = true
			queues = append(queues, name)
		}
	}
	if len(queues) == 0 {
		queues = []string{b.o.queue}
	}
	prefetch := req.Prefetch
	if prefetch <= 0 {
		prefetch = sdk.DefaultPrefetch
	}
	s := &stream{b: b, queues: queues, prefetch: prefetch, out: make(chan item, prefetch),
		held: map[uint64]held{}, closed: make(chan struct{})}
	openCtx, cancel := context.WithTimeout(ctx, b.o.unavailableAfter)
	defer cancel()
	lost, err := s.open(openCtx)
	if err != nil {
		s.shut()
		s.wg.Wait()
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		s.shut()
		s.wg.Wait()
		return nil, sdk.ErrClosed
	}
	b.streams[s] = struct{}{}
	b.mu.Unlock()
	s.wg.Add(1)
	go s.run(lost)
	return s, nil
}

// open opens a channel, declares the queues and starts their consumers.
func (s *stream) open(ctx context.Context) (chan *amqp.Error, error) {
	conn, cgen, err := s.b.connection(ctx)
	if err != nil {
		return nil, err
	}
	for _, q := range s.queues {
		if err := s.b.ensureQueue(conn, cgen, q); err != nil {
			return nil, s.b.wrap("declare", err)
		}
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, s.b.wrap("open channel", err)
	}
	// Per-consumer prefetch (quorum queues have no channel-wide QoS): the
	// credit window is shared out among the queues.
	per := max(1, (s.prefetch+len(s.queues)-1)/len(s.queues))
	if err := ch.Qos(per, 0, false); err != nil {
		_ = ch.Close()
		return nil, s.b.wrap("qos", err)
	}
	lost := ch.NotifyClose(make(chan *amqp.Error, 1))
	s.mu.Lock()
	select {
	case <-s.closed:
		// Closed while this channel was being opened: shut has already
		// run and would not see it.
		s.mu.Unlock()
		_ = ch.Close()
		return nil, sdk.ErrClosed
	default:
	}
	s.gen++
	gen := s.gen
	s.ch = ch
	s.held = map[uint64]held{}
	s.cons = map[string]struct{}{}
	s.mu.Unlock()
	for _, q := range s.queues {
		tag := "taskiq-" + randomTag()
		dch, err := ch.Consume(q, tag, false, false, false, false, nil)
		if err != nil {
			_ = ch.Close()
			return nil, s.b.wrap("consume "+q, err)
		}
		s.mu.Lock()
		s.cons[tag] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.forward(dch, gen, q)
	}
	return lost, nil
}

// forward copies one consumer's deliveries into the buffer until the
// channel closes.
func (s *stream) forward(dch <-chan amqp.Delivery, gen uint64, queue string) {
	defer s.wg.Done()
	for d := range dch {
		select {
		case s.out <- item{d: d, gen: gen, queue: queue}:
		case <-s.closed:
			return
		}
	}
}

// run reopens the channel whenever it is lost (a connection loss, or the
// server closing it, as it does when a delivery outlives the consumer
// timeout), until Close. After unavailable_after without a channel the
// stream ends with ErrUnavailable.
func (s *stream) run(lost chan *amqp.Error) {
	defer s.wg.Done()
	ctx := contextOf(s.closed)
	for {
		select {
		case <-s.closed:
			return
		case err := <-lost:
			switch {
			case err != nil && isConsumerTimeout(err):
				s.b.log.Error("RabbitMQ closed the delivery channel: a delivery stayed unacked longer than the "+
					"server's consumer timeout; its task will run again. Raise consumer_timeout in rabbitmq.conf "+
					"above the longest task", "error", err)
			case err != nil:
				s.b.log.Warn("delivery channel closed; unacked deliveries return to their queues", "error", err)
			}
		}
		s.mu.Lock()
		s.ch, s.gen = nil, s.gen+1 // ids of the lost channel are stale from now on
		s.held = map[uint64]held{}
		s.down = time.Now()
		s.mu.Unlock()
		bo := backoff.New(50*time.Millisecond, 2*time.Second)
		for {
			attemptCtx, cancel := context.WithTimeout(ctx, s.b.o.unavailableAfter)
			var err error
			lost, err = s.open(attemptCtx)
			cancel()
			if err == nil {
				break
			}
			if errors.Is(err, sdk.ErrClosed) {
				s.fail(err)
				return
			}
			if time.Since(s.down) >= s.b.o.unavailableAfter {
				s.fail(fmt.Errorf("rabbitmq at %s: delivery stream: %w: %w", s.b.o.addr, sdk.ErrUnavailable, err))
				return
			}
			if !bo.Wait(ctx) {
				return
			}
		}
	}
}

// isConsumerTimeout reports whether the server closed a channel because a
// delivery outlived its consumer timeout.
func isConsumerTimeout(err *amqp.Error) bool {
	return err.Code == amqp.PreconditionFailed && strings.Contains(err.Reason, "delivery acknowledgement") &&
		strings.Contains(err.Reason, "timed out")
}

func (s *stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.shut()
}

// Recv returns up to max deliveries, waiting for the first.
func (s *stream) Recv(ctx context.Context, max int) ([]sdk.Delivery, error) {
	if max < 1 {
		max = 1
	}
	var out []sdk.Delivery
	for len(out) == 0 {
		select {
		case it := <-s.out:
			if d, ok := s.accept(it); ok {
				out = append(out, d)
			}
		case <-s.closed:
			return nil, s.closedErr()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for len(out) < max {
		select {
		case it := <-s.out:
			if d, ok := s.accept(it); ok {
				out = append(out, d)
			}
		default:
			return out, nil
		}
	}
	return out, nil
}

func (s *stream) closedErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	return sdk.ErrClosed
}

// accept turns a buffered delivery into one for the worker, unless its
// channel is gone (the server has requeued it already).
func (s *stream) accept(it item) (sdk.Delivery, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it.gen != s.gen || s.ch == nil {
		return sdk.Delivery{}, false
	}
	attempt := attemptOf(it.d)
	s.held[it.d.DeliveryTag] = held{queue: it.queue, body: it.d.Body, headers: it.d.Headers, priority: it.d.Priority, attempt: attempt}
	return sdk.Delivery{ID: deliveryID(it.gen, it.d.DeliveryTag), Body: it.d.Body, Queue: it.queue, Attempt: attempt}, true
}

// attemptOf counts deliveries of a message: the attempt this plugin wrote
// when it published the message again after a nack, plus the server's
// redeliveries since (x-delivery-count of a quorum queue, or one when a
// classic queue marks it redelivered).
func attemptOf(d amqp.Delivery) int {
	base := 1
	if n, ok := tableInt(d.Headers[headerAttempt]); ok && n > 0 {
		base = int(n)
	}
	if n, ok := tableInt(d.Headers[headerDeliveryCount]); ok && n > 0 {
		return base + int(n)
	}
	if d.Redelivered {
		return base + 1
	}
	return base
}

func deliveryID(gen, tag uint64) string {
	return strconv.FormatUint(gen, 10) + "." + strconv.FormatUint(tag, 10)
}

func parseDeliveryID(id string) (gen, tag uint64, err error) {
	g, t, ok := strings.Cut(id, ".")
	if ok {
		if gen, err = strconv.ParseUint(g, 10, 64); err == nil {
			if tag, err = strconv.ParseUint(t, 10, 64); err == nil {
				return gen, tag, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("delivery id %q is not one of this plugin's", id)
}

// Settle applies a batch. Acks go to the channel at once. A nack publishes
// the message again (into its queue, or into the delay bucket of its
// delay) with the next attempt number, and a dead letter publishes it to
// the dead-letter queue with the reason in a header; both wait for the
// server's confirm before they ack the original, so a crash in between
// duplicates the message but never loses it. Extensions do nothing: there
// is no lease to extend (see the README). Settlements of deliveries of a
// lost channel are dropped: those messages are back in their queues.
func (s *stream) Settle(ctx context.Context, ss []sdk.Settlement) error {
	type pending struct {
		tag uint64
		h   held
		s   sdk.Settlement
	}
	s.settling.RLock()
	defer s.settling.RUnlock()
	var acks []uint64
	var repub []pending
	s.mu.Lock()
	ch, gen := s.ch, s.gen
	for _, st := range ss {
		g, tag, err := parseDeliveryID(st.DeliveryID)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		if g != gen || ch == nil {
			continue // stale: the lost channel's messages were requeued
		}
		h, ok := s.held[tag]
		switch st.Kind {
		case sdk.SettleExtend:
			continue
		case sdk.SettleAck:
			if ok { // not settled before: a second ack would close the channel
				acks = append(acks, tag)
			}
		case sdk.SettleNack, sdk.SettleDeadLetter:
			if ok {
				repub = append(repub, pending{tag, h, st})
			}
		default:
			s.mu.Unlock()
			return fmt.Errorf("settle %s: unknown kind %d", st.DeliveryID, st.Kind)
		}
		if st.Kind != sdk.SettleExtend {
			delete(s.held, tag)
		}
	}
	s.mu.Unlock()

	if len(repub) > 0 {
		// On failure the originals stay unacked: they go back to held so
		// that the host can settle them again; the plain acks of the
		// batch go out anyway.
		restore := func() {
			s.mu.Lock()
			if s.gen == gen {
				for _, p := range repub {
					s.held[p.tag] = p.h
				}
			}
			s.mu.Unlock()
			s.ackOrLog(ch, gen, acks)
		}
		conn, cgen, err := s.b.connection(ctx)
		if err != nil {
			restore()
			return err
		}
		out := make([]outgoing, 0, len(repub))
		for _, p := range repub {
			o, err := s.republish(conn, cgen, p.h, p.s)
			if err != nil {
				restore()
				return s.b.wrap("settle", err)
			}
			out = append(out, o)
		}
		if err := s.b.publish(ctx, out); err != nil {
			restore()
			return err
		}
		for _, p := range repub {
			acks = append(acks, p.tag) // their copies are confirmed
		}
	}
	s.ackOrLog(ch, gen, acks)
	return nil
}

// ackOrLog sends acks; a failure means the channel is gone and its unacked
// messages with it: they come back as new attempts.
func (s *stream) ackOrLog(ch *amqp.Channel, gen uint64, tags []uint64) {
	if err := s.sendAcks(ch, gen, tags); err != nil {
		s.b.log.Debug("ack on a closed channel dropped", "error", err)
	}
}

// sendAcks acks tags of channel generation gen with as few frames as it
// can: one multiple ack covers the tags of the batch up to the point below
// which every tag of the channel is acked, single acks the rest.
func (s *stream) sendAcks(ch *amqp.Channel, gen uint64, tags []uint64) error {
	if len(tags) == 0 {
		return nil
	}
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	if s.acks.gen != gen {
		s.acks = ackWindow{gen: gen}
	}
	upTo, single := s.acks.add(tags)
	if upTo > 0 {
		if err := ch.Ack(upTo, true); err != nil {
			return err
		}
	}
	for _, tag := range single {
		if err := ch.Ack(tag, false); err != nil {
			return err
		}
	}
	return nil
}

// ackWindow tracks the acked delivery tags of one channel (tags count from
// 1). Below mark every tag is acked; above it, the acked tags wait in done.
type ackWindow struct {
	gen  uint64
	mark uint64
	done map[uint64]bool
	// off: a delivery held for very long kept the mark back while
	// maxAckWindow tags were acked above it; single acks from then on.
	off bool
}

// maxAckWindow bounds the acked tags remembered above the mark.
const maxAckWindow = 1 << 16

// add records a batch of tags to ack (each acked once, never before) and
// says how to send them: upTo > 0 is the tag of one multiple ack that
// covers every tag of the batch up to it (every tag below upTo is acked
// by then, earlier or in this batch, and upTo itself is of this batch, so
// the server knows it), single the tags to ack one by one.
func (w *ackWindow) add(tags []uint64) (upTo uint64, single []uint64) {
	if w.off {
		return 0, tags
	}
	if len(w.done)+len(tags) > maxAckWindow {
		w.off, w.done = true, nil
		return 0, tags
	}
	if w.done == nil {
		w.done = map[uint64]bool{}
	}
	batch := make(map[uint64]bool, len(tags))
	for _, t := range tags {
		batch[t] = true
		w.done[t] = true
	}
	for w.done[w.mark+1] {
		w.mark++
		delete(w.done, w.mark)
		if batch[w.mark] {
			upTo = w.mark
		}
	}
	for _, t := range tags {
		if t > upTo {
			single = append(single, t)
		}
	}
	return upTo, single
}

// republish builds the copy a nack or dead letter publishes.
func (s *stream) republish(conn *amqp.Connection, cgen uint64, h held, st sdk.Settlement) (outgoing, error) {
	headers := amqp.Table{}
	for k, v := range h.headers {
		switch k {
		case "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason", headerDeliveryCount:
			// The server's bookkeeping of earlier dead-lettering (delay
			// buckets) and redeliveries: this is a new message.
		default:
			headers[k] = v
		}
	}
	p := amqp.Publishing{Headers: headers, DeliveryMode: amqp.Persistent, Priority: h.priority, Body: h.body}
	if id, ok := headers[headerTaskID].(string); ok {
		p.MessageId = id
	}
	if st.Kind == sdk.SettleDeadLetter {
		headers[headerDeadReason] = st.Reason
		headers[headerDeadQueue] = h.queue
		headers[headerDeadAt] = time.Now().UTC().Format(time.RFC3339Nano)
		headers[headerAttempt] = int64(h.attempt)
		return outgoing{exchange: "", key: s.b.o.deadLetter, msg: p}, nil
	}
	headers[headerAttempt] = int64(h.attempt + 1)
	if st.Delay > 0 {
		bucket, err := s.b.ensureBucket(conn, cgen, h.queue, bucketOf(st.Delay))
		if err != nil {
			return outgoing{}, err
		}
		return outgoing{exchange: "", key: bucket, msg: p}, nil
	}
	return outgoing{exchange: "", key: h.queue, msg: p}, nil
}

// Close ends the stream; the server returns its unacked deliveries to
// their queues.
func (s *stream) Close() error {
	s.shut()
	s.wg.Wait()
	s.b.mu.Lock()
	delete(s.b.streams, s)
	s.b.mu.Unlock()
	return nil
}

// shut closes the stream's channel once.
func (s *stream) shut() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.settling.Lock() // let the settlements under way finish
		defer s.settling.Unlock()
		s.mu.Lock()
		ch, cons := s.ch, s.cons
		s.ch = nil
		s.gen++
		s.mu.Unlock()
		if ch != nil {
			// Cancel the consumers first, waiting for each cancel-ok: a
			// quorum queue applies acks asynchronously, and a channel
			// closed right after its last acks can reach the queue first,
			// which then returns the acked messages. The cancel is
			// ordered after the acks on the queue's side.
			for tag := range cons {
				_ = ch.Cancel(tag, false)
			}
			_ = ch.Close()
		}
	})
}
