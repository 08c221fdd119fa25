package sdk

import (
	"runtime"
	"sync"
)

// sendQueue coalesces what many goroutines send on one stream. Whoever
// pushes while nobody is sending sends everything queued, calling write
// with what has accumulated, until the queue is empty: a burst costs one
// write per batch, and no goroutine is woken to send.
type sendQueue[T any] struct {
	mu       sync.Mutex
	queue    []T
	spare    []T
	flushing bool
}

// push queues it and, unless another goroutine is sending, sends the queue
// with write (one caller at a time). The error is write's first.
func (q *sendQueue[T]) push(it T, write func([]T) error) error {
	q.mu.Lock()
	q.queue = append(q.queue, it)
	if q.flushing {
		q.mu.Unlock()
		return nil
	}
	q.flushing = true
	q.mu.Unlock()
	// Let the goroutines made runnable by the same burst (a batch of
	// deliveries, a batch of requests) queue theirs first: one write then
	// carries them all.
	runtime.Gosched()
	q.mu.Lock()
	var err error
	for len(q.queue) > 0 {
		items := q.queue
		q.queue = q.spare[:0]
		q.mu.Unlock()
		if werr := write(items); werr != nil && err == nil {
			err = werr
		}
		clear(items)
		q.mu.Lock()
		q.spare = items[:0]
	}
	q.flushing = false
	q.mu.Unlock()
	return err
}
