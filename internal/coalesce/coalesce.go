// Package coalesce turns concurrent single-item calls into batched calls: the
// host's kicks, settlements and result writes cross the plugin boundary in
// batches without making callers batch by hand.
package coalesce

import (
	"context"
	"sync"
	"time"
)

// Coalescer collects items from concurrent Do calls and hands them to flush in
// batches of at most max. While one batch is in flight, new items accumulate
// for the next one, so batch size adapts to load: one caller alone pays one
// call, a thousand concurrent callers share a handful.
type Coalescer[T any] struct {
	flush func(ctx context.Context, items []T) error
	max   int
	pace  time.Duration
	sleep func(time.Duration) // time.Sleep; tests replace it

	mu      sync.Mutex
	pending []T
	waiters []waiter
	running bool
	// parked: the runner waits on wake for more work (see runnerIdle).
	parked  bool
	wake    chan struct{}
	idleFor time.Duration // runnerIdle; tests shorten it
	// stopping asks the runner to exit once nothing is pending (Close);
	// runnerDone is closed when the current runner has exited.
	stopping   bool
	runnerDone chan struct{}
}

type waiter struct {
	n    int        // items of this Do or Post call
	done chan error // nil for Post
}

// FlushTimeout bounds one flush.
const FlushTimeout = time.Minute

// New returns a Coalescer. max ≤ 0 means 512.
func New[T any](max int, flush func(ctx context.Context, items []T) error) *Coalescer[T] {
	return NewPaced(max, 0, flush)
}

// NewPaced returns a Coalescer that starts a flush at most once per pace
// while items keep coming: after each flush it waits out the rest of pace
// before taking the next batch. A flush after a quiet spell starts at once.
// It is for flushes so cheap that batches would otherwise stay tiny (a send
// on a stream): pacing trades up to pace of delay for fewer, larger batches.
// Go's timers make a pause under a millisecond last about a millisecond on
// an otherwise idle process.
func NewPaced[T any](max int, pace time.Duration, flush func(ctx context.Context, items []T) error) *Coalescer[T] {
	if max <= 0 {
		max = 512
	}
	return &Coalescer[T]{flush: flush, max: max, pace: pace, sleep: time.Sleep, wake: make(chan struct{}, 1), idleFor: runnerIdle}
}

var donePool = sync.Pool{New: func() any { return make(chan error, 1) }}

// Do queues items and waits until the batch carrying the last of them is
// flushed, returning that batch's error. If ctx ends first, Do returns ctx's
// error; the items may still be flushed.
func (c *Coalescer[T]) Do(ctx context.Context, items ...T) error {
	if len(items) == 0 {
		return nil
	}
	done := donePool.Get().(chan error)
	c.enqueue(items, done)
	select {
	case err := <-done:
		donePool.Put(done)
		return err
	case <-ctx.Done():
		// done is written later by run and then dropped with the channel.
		return ctx.Err()
	}
}

// Post queues items without waiting for their flush; the flush's error is
// the flush function's to report. Items of successive Post and Do calls are
// flushed in the order they were queued, so a caller that posts under its
// own lock sends its operations in the order it decided them.
func (c *Coalescer[T]) Post(items ...T) {
	if len(items) > 0 {
		c.enqueue(items, nil)
	}
}

// enqueue adds items (and their waiter; done is nil for Post) and makes
// sure a runner will flush them.
func (c *Coalescer[T]) enqueue(items []T, done chan error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, items...)
	c.waiters = append(c.waiters, waiter{n: len(items), done: done})
	switch {
	case !c.running:
		c.running = true
		c.runnerDone = make(chan struct{})
		go c.run(c.runnerDone)
	case c.parked:
		c.parked = false
		c.wake <- struct{}{} // never blocks: one token per park
	}
}

// runnerIdle is how long the flushing goroutine waits for more work before
// it exits. Reusing it matters at low rates: a new goroutine per flush grew
// its stack through the gRPC call path every time (10% of the host's CPU at
// 1k tasks/s).
const runnerIdle = 5 * time.Second

// Close flushes what is queued, stops the flushing goroutine and returns
// once it has ended, so that the Coalescer's owner can end without leaving
// it behind for runnerIdle. A Do or Post after Close starts a new one,
// which the next Close stops; nothing queued is dropped.
func (c *Coalescer[T]) Close() {
	c.mu.Lock()
	if !c.running {
		c.mu.Unlock()
		return
	}
	c.stopping = true
	if c.parked {
		c.parked = false
		c.wake <- struct{}{}
	}
	done := c.runnerDone
	c.mu.Unlock()
	<-done
}

func (c *Coalescer[T]) run(done chan struct{}) {
	defer close(done)
	idle := time.NewTimer(c.idleFor)
	defer idle.Stop()
	var last time.Time // when the last flush started
	for {
		c.mu.Lock()
		if len(c.pending) == 0 && c.stopping {
			c.running, c.stopping = false, false
			c.mu.Unlock()
			return
		}
		if len(c.pending) == 0 {
			c.parked = true
			idleFor := c.idleFor
			c.mu.Unlock()
			idle.Reset(idleFor)
			select {
			case <-c.wake:
				continue
			case <-idle.C:
			}
			c.mu.Lock()
			if c.parked { // nobody came: exit; the next Do starts a runner
				c.parked, c.running = false, false
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			<-c.wake // a Do unparked us as the timer fired; its token is there
			continue
		}
		// Paced: an item that comes within pace of the last flush waits out
		// the rest of it, and what arrives meanwhile goes in the same batch.
		// One that comes later (a low rate, a quiet spell) is flushed at once,
		// with no timer wakeup.
		if rest := c.pace - time.Since(last); c.pace > 0 && rest > 0 {
			c.mu.Unlock()
			c.sleep(rest)
			c.mu.Lock() // pending only grew meanwhile: only the runner takes items
		}
		// Take whole waiters until the batch is full; a waiter with more than
		// max items goes alone.
		n, w := 0, 0
		for w < len(c.waiters) && (n == 0 || n+c.waiters[w].n <= c.max) {
			n += c.waiters[w].n
			w++
		}
		batch := make([]T, n)
		copy(batch, c.pending[:n])
		waiters := make([]waiter, w)
		copy(waiters, c.waiters[:w])
		c.pending = append(c.pending[:0], c.pending[n:]...)
		c.waiters = append(c.waiters[:0], c.waiters[w:]...)
		c.mu.Unlock()

		// A flush carries other callers' items, so no caller's context bounds
		// it; FlushTimeout keeps a hung backend from blocking all later calls.
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), FlushTimeout)
		err := c.flush(ctx, batch)
		cancel()
		for _, wt := range waiters {
			if wt.done != nil {
				wt.done <- err
			}
		}
		last = start
	}
}
