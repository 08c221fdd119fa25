package inmemory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// ResultOptions configures a ResultBackend. The zero value keeps every
// result forever.
type ResultOptions struct {
	// TTL is how long a result (and the task's progress) stays readable
	// after it is stored. Zero keeps it until the process exits; with many
	// tasks and no TTL memory only grows, so set one for long-running
	// processes.
	TTL time.Duration
	// DiscardOnRead deletes a result (and its progress) once GetResult or
	// WaitResult returned it: the config's keep_results = false.
	DiscardOnRead bool
}

// ResultBackend is an in-memory sdk.ResultBackend and sdk.ResultWaiter. It
// is safe for concurrent use. WaitResult parks on a per-task channel that
// SetResults closes, so a waiter returns the moment its result is stored.
type ResultBackend struct {
	opts ResultOptions
	now  func() time.Time

	mu       sync.Mutex
	results  map[string]stored
	progress map[string]stored
	waiters  map[string]*resultWaiter
	// expiries lists stored entries in the order they expire: with one TTL
	// for everything that is insertion order, so expired entries are swept
	// from the front in amortised O(1) on every write, without a goroutine.
	expiries fifoOf[expiry]
	closed   bool
}

type stored struct {
	body []byte
	// expiresAt is zero when the entry never expires.
	expiresAt time.Time
}

func (s stored) expired(now time.Time) bool {
	return !s.expiresAt.IsZero() && !now.Before(s.expiresAt)
}

type expiry struct {
	taskID   string
	progress bool
	at       time.Time
}

// resultWaiter is shared by every WaitResult call for one task.
type resultWaiter struct {
	// ready is closed once body is set or the backend closed.
	ready chan struct{}
	body  []byte
	// closed is set when the backend closed before a result came.
	closed bool
	// n counts the waiting calls, so the last one to give up removes it.
	n int
}

// Interface guards.
var (
	_ sdk.ResultBackend = (*ResultBackend)(nil)
	_ sdk.ResultWaiter  = (*ResultBackend)(nil)
)

// NewResultBackend returns an empty result backend.
func NewResultBackend(opts ResultOptions) *ResultBackend {
	return newResultBackend(opts, time.Now)
}

func newResultBackend(opts ResultOptions, now func() time.Time) *ResultBackend {
	if opts.TTL < 0 {
		opts.TTL = 0
	}
	return &ResultBackend{
		opts:     opts,
		now:      now,
		results:  make(map[string]stored),
		progress: make(map[string]stored),
		waiters:  make(map[string]*resultWaiter),
	}
}

// SetResults stores a batch of results and wakes their waiters. The backend
// keeps each Body as is: the caller must not modify it afterwards.
func (r *ResultBackend) SetResults(ctx context.Context, results []sdk.StoredResult) error {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("set results: %w", sdk.ErrClosed)
	}
	r.sweepLocked(now)
	for _, res := range results {
		r.results[res.TaskID] = r.storeLocked(res.TaskID, res.Body, false, now)
		if w, ok := r.waiters[res.TaskID]; ok {
			w.body = res.Body
			close(w.ready)
			delete(r.waiters, res.TaskID)
		}
	}
	return nil
}

// GetResult returns a stored result, or sdk.ErrNotFound.
func (r *ResultBackend) GetResult(ctx context.Context, taskID string) ([]byte, error) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("get result: %w", sdk.ErrClosed)
	}
	body, ok := r.lookupLocked(r.results, taskID, now)
	if !ok {
		return nil, fmt.Errorf("result of task %q: %w", taskID, sdk.ErrNotFound)
	}
	r.consumedLocked(taskID)
	return body, nil
}

// IsReady reports whether a result is stored; it does not consume it.
func (r *ResultBackend) IsReady(ctx context.Context, taskID string) (bool, error) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false, fmt.Errorf("is ready: %w", sdk.ErrClosed)
	}
	_, ok := r.lookupLocked(r.results, taskID, now)
	return ok, nil
}

// WaitResult returns the task's result as soon as it is stored, or ctx's
// error, or sdk.ErrClosed when the backend closes first.
func (r *ResultBackend) WaitResult(ctx context.Context, taskID string) ([]byte, error) {
	now := r.now()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("wait result: %w", sdk.ErrClosed)
	}
	if body, ok := r.lookupLocked(r.results, taskID, now); ok {
		r.consumedLocked(taskID)
		r.mu.Unlock()
		return body, nil
	}
	w, ok := r.waiters[taskID]
	if !ok {
		w = &resultWaiter{ready: make(chan struct{})}
		r.waiters[taskID] = w
	}
	w.n++
	r.mu.Unlock()

	select {
	case <-w.ready:
		r.mu.Lock()
		defer r.mu.Unlock()
		if w.closed {
			return nil, fmt.Errorf("wait result: %w", sdk.ErrClosed)
		}
		// Every waiter gets the result it was woken for, even when an
		// earlier one already consumed it with DiscardOnRead.
		r.consumedLocked(taskID)
		return w.body, nil
	case <-ctx.Done():
		r.mu.Lock()
		defer r.mu.Unlock()
		w.n--
		if w.n == 0 && r.waiters[taskID] == w {
			delete(r.waiters, taskID)
		}
		return nil, ctx.Err()
	}
}

// SetProgress stores the task's latest progress report.
func (r *ResultBackend) SetProgress(ctx context.Context, taskID string, progress []byte) error {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("set progress: %w", sdk.ErrClosed)
	}
	r.sweepLocked(now)
	r.progress[taskID] = r.storeLocked(taskID, progress, true, now)
	return nil
}

// GetProgress returns the task's latest progress report, or sdk.ErrNotFound.
func (r *ResultBackend) GetProgress(ctx context.Context, taskID string) ([]byte, error) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("get progress: %w", sdk.ErrClosed)
	}
	body, ok := r.lookupLocked(r.progress, taskID, now)
	if !ok {
		return nil, fmt.Errorf("progress of task %q: %w", taskID, sdk.ErrNotFound)
	}
	return body, nil
}

// Close drops everything and wakes pending WaitResult calls with
// sdk.ErrClosed.
func (r *ResultBackend) Close(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	for id, w := range r.waiters {
		w.closed = true
		close(w.ready)
		delete(r.waiters, id)
	}
	clear(r.results)
	clear(r.progress)
	r.expiries = fifoOf[expiry]{}
	return nil
}

func (r *ResultBackend) storeLocked(taskID string, body []byte, progress bool, now time.Time) stored {
	s := stored{body: body}
	if r.opts.TTL > 0 {
		s.expiresAt = now.Add(r.opts.TTL)
		r.expiries.push(expiry{taskID: taskID, progress: progress, at: s.expiresAt})
	}
	return s
}

// lookupLocked returns a live entry, deleting it when it has expired.
func (r *ResultBackend) lookupLocked(m map[string]stored, taskID string, now time.Time) ([]byte, bool) {
	s, ok := m[taskID]
	if !ok {
		return nil, false
	}
	if s.expired(now) {
		delete(m, taskID)
		return nil, false
	}
	return s.body, true
}

// consumedLocked applies DiscardOnRead after a result was handed out.
func (r *ResultBackend) consumedLocked(taskID string) {
	if r.opts.DiscardOnRead {
		delete(r.results, taskID)
		delete(r.progress, taskID)
	}
}

// sweepLocked deletes the entries whose TTL passed. An expiry record whose
// entry was overwritten since carries an older time than the entry and is
// skipped.
func (r *ResultBackend) sweepLocked(now time.Time) {
	for r.expiries.len() > 0 {
		e := r.expiries.front()
		if now.Before(e.at) {
			return
		}
		r.expiries.pop()
		m := r.results
		if e.progress {
			m = r.progress
		}
		if s, ok := m[e.taskID]; ok && s.expiresAt.Equal(e.at) {
			delete(m, e.taskID)
		}
	}
}
