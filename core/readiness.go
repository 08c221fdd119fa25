package core

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// DefaultUnreadyAfter is how long a worker's broker may fail before the
// worker reports itself not ready (WorkerOptions.UnreadyAfter).
const DefaultUnreadyAfter = 10 * time.Second

// readiness follows whether a worker can take tasks, from what the worker
// sees of its broker without asking it anything more: a delivery stream that
// opens is a successful round trip; a stream that breaks, or fails to open,
// starts a failure that makes the worker not ready once it has lasted
// UnreadyAfter. A short failure (a plugin restarted, a stream reopened at
// once) does not flap the state.
type readiness struct {
	clk    clock
	after  time.Duration
	broker string
	notify func(ready bool, reason string)
	done   chan struct{}
	wg     *sync.WaitGroup // counts the timers (start)

	mu      sync.Mutex
	ready   bool      // what was last reported (false until the first stream opens)
	failing bool      // a failure is under way since since
	since   time.Time // start of the current failure
	lastErr error     // the latest error of the current failure
	episode int       // counts failures, so an old timer cannot end a new one
}

func newReadiness(clk clock, after time.Duration, broker string, notify func(bool, string)) *readiness {
	if notify == nil {
		notify = func(bool, string) {}
	}
	return &readiness{clk: clk, after: after, broker: broker, notify: notify, done: make(chan struct{}), wg: &sync.WaitGroup{}}
}

// start counts the timers readiness starts on wg; down and up must not be
// called after shutdown.
func (r *readiness) start(wg *sync.WaitGroup) { r.wg = wg }

// up records a delivery stream that opened.
func (r *readiness) up() {
	r.mu.Lock()
	r.failing = false
	r.episode++
	changed := !r.ready
	r.ready = true
	r.mu.Unlock()
	if changed {
		r.notify(true, "")
	}
}

// down records a failure of the broker: a stream that broke or did not open.
func (r *readiness) down(err error) {
	r.mu.Lock()
	r.lastErr = err
	if r.failing {
		r.mu.Unlock()
		return
	}
	r.failing, r.since = true, r.clk.Now()
	episode := r.episode
	// The timer starts here, not in the goroutine: a goroutine scheduled
	// late would start it late and report the failure late.
	expired := r.clk.After(r.after)
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case <-expired:
			r.expire(episode)
		case <-r.done:
		}
	}()
}

func (r *readiness) expire(episode int) {
	r.mu.Lock()
	if !r.failing || r.episode != episode || !r.ready {
		r.mu.Unlock()
		return
	}
	r.ready = false
	reason := fmt.Sprintf("broker %q unavailable for %s: %v", r.broker, r.clk.Now().Sub(r.since).Round(time.Second), r.lastErr)
	r.mu.Unlock()
	// One line: the supervisor reads status lines.
	r.notify(false, strings.Join(strings.Fields(reason), " "))
}

// shutdown ends the pending timers once the worker returns.
func (r *readiness) shutdown() { close(r.done) }
