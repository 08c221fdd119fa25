package inmemory

import (
	"time"
)

// runTimekeeper is the broker's only background goroutine: it moves delayed
// messages to their queues when due and redelivers deliveries whose lease
// expired. One timer serves both heaps, re-armed for the earliest entry.
func (b *Broker) runTimekeeper() {
	defer close(b.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		b.mu.Lock()
		now := b.now()
		b.expireLocked(now)
		next := b.nextDueLocked()
		b.timerAt = next
		b.unlock()
		if !next.IsZero() {
			timer.Reset(max(next.Sub(now), 0))
		}
		select {
		case <-timer.C:
		case <-b.wake:
		case <-b.done:
			timer.Stop()
			return
		}
		timer.Stop()
	}
}

// tick runs the timekeeper's work once, at the broker clock's current time.
// Tests call it after moving their fake clock.
func (b *Broker) tick() {
	b.mu.Lock()
	defer b.unlock()
	b.expireLocked(b.now())
}

// expireLocked releases the delayed messages due by now and redelivers the
// deliveries whose lease expired by now.
func (b *Broker) expireLocked(now time.Time) {
	for m := b.delayed.peek(); m != nil && !m.due.After(now); m = b.delayed.peek() {
		b.delayed.popMin()
		q := b.queueLocked(m.queue)
		q.push(m)
		b.wakeListenersLocked(q)
	}
	for m := b.leases.peek(); m != nil && !m.deadline.After(now); m = b.leases.peek() {
		b.leases.popMin()
		delete(m.owner.inflight, m.deliveryID)
		b.requeueLocked(m, now, 0)
	}
}

// nextDueLocked returns the earliest due time or lease deadline, or zero.
func (b *Broker) nextDueLocked() time.Time {
	var next time.Time
	if m := b.delayed.peek(); m != nil {
		next = m.due
	}
	if m := b.leases.peek(); m != nil && (next.IsZero() || m.deadline.Before(next)) {
		next = m.deadline
	}
	return next
}

// scheduleLocked makes sure the timekeeper wakes by t.
func (b *Broker) scheduleLocked(t time.Time) {
	if !b.timerAt.IsZero() && !t.Before(b.timerAt) {
		return
	}
	b.timerAt = t
	select {
	case b.wake <- struct{}{}:
	default:
	}
}
