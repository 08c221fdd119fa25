package supervise

import (
	"context"
	"errors"
	"sync"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// WatchResult watches taskID's result on the current process without a
// goroutine (the SDK's shared WatchResults stream). When that process dies
// under the watch, or no live process is there when the watch starts, the
// watch moves to a goroutine that waits on a restarted process, once, as
// call does for the other methods.
func (r supervisedResults) WatchResult(taskID string, done func([]byte, error)) (stop func() bool) {
	w := &watchCall{p: r.p, id: taskID, done: done}
	w.mu.Lock()
	defer w.mu.Unlock()
	c := r.p.live.Load()
	var rw sdk.ResultWatcher
	if c != nil && !c.Exited() {
		rw, _ = c.ResultBackend().(sdk.ResultWatcher)
	}
	if rw == nil {
		w.retryLocked(nil, nil)
		return w.withdraw
	}
	w.c = c
	w.stop = rw.WatchResult(taskID, w.answer)
	return w.withdraw
}

// watchCall is one supervised WatchResult. finished is set by whoever
// delivers the answer or withdraws the watch, under mu.
type watchCall struct {
	p    *Proc
	id   string
	done func([]byte, error)
	c    *sdk.Client // the process watched on, nil once the watch moved

	mu       sync.Mutex
	finished bool
	stop     func() bool        // withdraws the watch on c
	cancel   context.CancelFunc // ends the goroutine the watch moved to
}

// answer is the watch's answer from c's process.
func (w *watchCall) answer(b []byte, err error) {
	w.mu.Lock()
	if !w.finished && err != nil && w.c != nil && (errors.Is(err, sdk.ErrUnavailable) || w.c.Exited()) {
		// Perhaps the process died: Died finds out, off this goroutine.
		c := w.c
		w.c, w.stop = nil, nil
		w.retryLocked(c, err)
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	w.finish(b, err)
}

// finish delivers the answer unless the watch has already finished.
func (w *watchCall) finish(b []byte, err error) {
	w.mu.Lock()
	if w.finished {
		w.mu.Unlock()
		return
	}
	w.finished = true
	w.mu.Unlock()
	w.done(b, err)
}

// retryLocked moves the watch to a goroutine: when c (nil: none) has died
// with err, or there was no live process, it waits on a restarted one;
// when c is alive, err is the answer.
func (w *watchCall) retryLocked(c *sdk.Client, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() {
		defer cancel()
		var b []byte
		if c == nil || Died(c, err) {
			b, err = callOnce(ctx, w.p, func(c *sdk.Client) ([]byte, error) {
				rw, ok := c.ResultBackend().(sdk.ResultWaiter)
				if !ok {
					return nil, sdk.ErrUnsupported
				}
				return rw.WaitResult(ctx, w.id)
			})
		}
		w.finish(b, err)
	}()
}

// withdraw is the stop of WatchResult: false when the answer has been (or
// is being) delivered.
func (w *watchCall) withdraw() bool {
	w.mu.Lock()
	if w.finished {
		w.mu.Unlock()
		return false
	}
	w.finished = true
	stop, cancel := w.stop, w.cancel
	w.mu.Unlock()
	if stop != nil {
		stop() // an answer on its way finds finished set and is dropped
	}
	if cancel != nil {
		cancel()
	}
	return true
}

var _ sdk.ResultWatcher = supervisedResults{}
