package inmemory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// source is one queue of a stream with its smooth-weighted-round-robin state.
type source struct {
	q      *queue
	weight int
	// current is the running score of smooth weighted round robin; it
	// persists across Recv calls so small batches stay fair over time.
	current int
}

// stream is one listener. Its fields are guarded by the broker's mutex.
type stream struct {
	b       *Broker
	lease   time.Duration
	strict  bool
	sources []source
	// inflight holds the stream's unsettled deliveries by delivery number.
	inflight map[uint64]*message
	// waitCh is closed to wake the Recv calls blocked on it; nil when no
	// Recv waits. Closing (not sending) wakes concurrent Recv calls alike.
	waitCh chan struct{}
	closed bool
}

// Interface guards.
var _ sdk.Stream = (*stream)(nil)

// Recv blocks until a delivery is ready and returns up to max of them (a max
// below 1 counts as 1).
func (s *stream) Recv(ctx context.Context, max int) ([]sdk.Delivery, error) {
	if max < 1 {
		max = 1
	}
	b := s.b
	for {
		b.mu.Lock()
		if s.closed || b.closed {
			b.unlock()
			return nil, fmt.Errorf("recv: %w", sdk.ErrClosed)
		}
		if s.readyLocked() {
			out := s.takeLocked(b.now(), max)
			b.unlock()
			return out, nil
		}
		if s.waitCh == nil {
			s.waitCh = make(chan struct{})
		}
		ch := s.waitCh
		b.unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *stream) readyLocked() bool {
	for i := range s.sources {
		if q := s.sources[i].q; q.n > 0 && !q.paused {
			return true
		}
	}
	return false
}

// takeLocked delivers up to max ready messages: queue by queue in order when
// strict, by smooth weighted round robin over the non-empty queues otherwise.
func (s *stream) takeLocked(now time.Time, max int) []sdk.Delivery {
	ready := 0
	for i := range s.sources {
		if !s.sources[i].q.paused {
			ready += s.sources[i].q.n
		}
	}
	out := make([]sdk.Delivery, 0, min(ready, max))
	deadline := now.Add(s.lease)
	if s.strict || len(s.sources) == 1 {
		for i := range s.sources {
			q := s.sources[i].q
			for q.n > 0 && !q.paused && len(out) < max {
				out = append(out, s.deliverLocked(q.pop(), deadline))
			}
		}
		return out
	}
	for len(out) < max {
		best, total := -1, 0
		for i := range s.sources {
			src := &s.sources[i]
			if src.q.n == 0 || src.q.paused {
				continue
			}
			src.current += src.weight
			total += src.weight
			if best < 0 || src.current > s.sources[best].current {
				best = i
			}
		}
		if best < 0 {
			break
		}
		src := &s.sources[best]
		src.current -= total
		out = append(out, s.deliverLocked(src.q.pop(), deadline))
	}
	return out
}

func (s *stream) deliverLocked(m *message, deadline time.Time) sdk.Delivery {
	b := s.b
	b.lastDelivery++
	if q := b.queues[m.queue]; q != nil {
		q.delivered++
	}
	m.deliveryID = b.lastDelivery
	m.owner = s
	m.deadline = deadline
	m.attempt++
	s.inflight[m.deliveryID] = m
	b.leases.add(m)
	b.scheduleLocked(deadline)
	return sdk.Delivery{
		ID:            b.formatID(m.deliveryID),
		Body:          m.body,
		Queue:         m.queue,
		Attempt:       m.attempt,
		LeaseDeadline: deadline,
	}
}

// Settle applies a batch of settlements. A settlement naming a delivery the
// stream does not hold yields an error wrapping ErrUnknownDelivery; the rest
// of the batch still applies. An Extend with a zero Delay renews the
// stream's lease.
func (s *stream) Settle(ctx context.Context, batch []sdk.Settlement) error {
	b := s.b
	now := b.now()
	b.mu.Lock()
	defer b.unlock()
	if s.closed || b.closed {
		return fmt.Errorf("settle: %w", sdk.ErrClosed)
	}
	var errs []error
	for _, st := range batch {
		m := s.inflight[b.parseID(st.DeliveryID)]
		if m == nil {
			errs = append(errs, fmt.Errorf("settle %s of delivery %q: %w", st.Kind, st.DeliveryID, ErrUnknownDelivery))
			continue
		}
		switch st.Kind {
		case sdk.SettleAck:
			s.releaseLocked(m)
			// The message's batch slab may outlive it; its body need not.
			m.body = nil
		case sdk.SettleNack:
			s.releaseLocked(m)
			b.requeueLocked(m, now, st.Delay)
		case sdk.SettleExtend:
			d := st.Delay
			if d <= 0 {
				d = s.lease
			}
			m.deadline = now.Add(d)
			b.leases.fix(m)
			b.scheduleLocked(m.deadline)
		case sdk.SettleDeadLetter:
			s.releaseLocked(m)
			b.deadLetterLocked(m, st.Reason, now)
		default:
			errs = append(errs, fmt.Errorf("settle delivery %q: unknown settlement kind %d; the delivery stays in flight", st.DeliveryID, int(st.Kind)))
		}
	}
	return errors.Join(errs...)
}

// releaseLocked takes m out of the stream and the lease heap.
func (s *stream) releaseLocked(m *message) {
	delete(s.inflight, m.deliveryID)
	s.b.leases.remove(m)
}

// Close ends the stream. Its unsettled deliveries go back to their queues at
// once, in delivery order, and are redelivered with Attempt+1.
func (s *stream) Close() error {
	b := s.b
	b.mu.Lock()
	defer b.unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.wakeLocked()
	delete(b.streams, s)
	for i := range s.sources {
		s.sources[i].q.removeListener(s)
	}
	if len(s.inflight) == 0 {
		return nil
	}
	back := make([]*message, 0, len(s.inflight))
	for _, m := range s.inflight {
		back = append(back, m)
	}
	slices.SortFunc(back, func(x, y *message) int {
		switch {
		case x.deliveryID < y.deliveryID:
			return -1
		case x.deliveryID > y.deliveryID:
			return 1
		}
		return 0
	})
	now := b.now()
	for _, m := range back {
		s.releaseLocked(m)
		b.requeueLocked(m, now, 0)
	}
	return nil
}

// wakeLocked wakes the Recv calls blocked on this stream.
func (s *stream) wakeLocked() {
	if s.waitCh != nil {
		close(s.waitCh)
		s.waitCh = nil
	}
}
