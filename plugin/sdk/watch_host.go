package sdk

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/taskiq-go/taskiq/internal/coalesce"
	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// resultWatcher is the host side: every watch of a Client shares one
// WatchResults stream. The first watch of a task id sends a watch, the last
// one to be withdrawn sends a cancel; the answer goes to all of them. A
// watch is a small struct in a map, with no goroutine of its own.
type resultWatcher struct {
	c   *Client
	rpc pluginv1.ResultBackendClient

	mu          sync.Mutex
	stream      *watchStream
	unsupported bool
}

// watchStream is one open WatchResults stream and its watches. Its fields
// are guarded by resultWatcher.mu.
type watchStream struct {
	gs      pluginv1.ResultBackend_WatchResultsClient
	cancel  context.CancelFunc
	waiters map[string][]*watchEntry
	// sends sends watches and cancels, posted under the lock in the order
	// the waiters came and went; in a batch the last op of each id wins.
	sends *coalesce.Coalescer[watchOp]
	ended bool
}

// watchEntry is one watch. finished and cancel are guarded by
// resultWatcher.mu; whoever sets finished calls done (or, for stop, not).
type watchEntry struct {
	id       string
	done     func([]byte, error)
	st       *watchStream
	finished bool
	// cancel ends the unary WaitResult the watch moved to, if it did.
	cancel context.CancelFunc
}

type watchOp struct {
	id    string
	watch bool
}

type watchOutcome struct {
	body []byte
	err  error
}

// watch registers done for taskID's result over the shared stream (see
// ResultWatcher).
func (w *resultWatcher) watch(taskID string, done func([]byte, error)) (stop func() bool) {
	e := &watchEntry{id: taskID, done: done}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.unsupported {
		w.unaryLocked(e)
		return func() bool { return w.stop(e) }
	}
	st, err := w.openLocked()
	if err != nil {
		e.finished = true
		err = w.c.mapErr(context.Background(), "wait result", err)
		go done(nil, err)
		return func() bool { return false }
	}
	e.st = st
	if len(st.waiters[taskID]) == 0 {
		w.queueLocked(st, watchOp{id: taskID, watch: true})
	}
	st.waiters[taskID] = append(st.waiters[taskID], e)
	return func() bool { return w.stop(e) }
}

// stop withdraws e: false when its answer has been delivered already.
func (w *resultWatcher) stop(e *watchEntry) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e.finished {
		return false
	}
	e.finished = true
	if e.cancel != nil {
		e.cancel()
		return true
	}
	st := e.st
	entries := st.waiters[e.id]
	for i, x := range entries {
		if x == e {
			entries = append(entries[:i], entries[i+1:]...)
			break
		}
	}
	if len(entries) > 0 {
		st.waiters[e.id] = entries
	} else if _, waiting := st.waiters[e.id]; waiting {
		delete(st.waiters, e.id)
		w.queueLocked(st, watchOp{id: e.id})
	}
	return true
}

// unaryLocked moves e to a WaitResult call of its own, for a plugin without
// WatchResults.
func (w *resultWatcher) unaryLocked(e *watchEntry) {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	call := func() {
		resp, err := w.rpc.WaitResult(ctx, &pluginv1.TaskRef{TaskId: e.id})
		var o watchOutcome
		switch {
		case err != nil:
			o.err = w.c.mapErr(ctx, "wait result", err)
		case !resp.Found:
			o.err = notFound(e.id)
		default:
			o.body = resp.Body
		}
		w.finish(e, o)
	}
	if !w.c.start(call) {
		cancel()
		go w.finish(e, watchOutcome{err: w.c.errStopped("wait result")})
	}
}

// finish delivers o to e unless e was stopped or answered.
func (w *resultWatcher) finish(e *watchEntry, o watchOutcome) {
	w.mu.Lock()
	mine := !e.finished
	e.finished = true
	w.mu.Unlock()
	if e.cancel != nil {
		e.cancel()
	}
	if mine {
		e.done(o.body, o.err)
	}
}

// queueLocked posts op unless the stream has ended.
func (w *resultWatcher) queueLocked(st *watchStream, op watchOp) {
	if !st.ended {
		st.sends.Post(op)
	}
}

// send sends a batch of ops as one request, the last op of each id winning.
// A failed send means the stream is over; its receive loop answers the
// waiters.
func (st *watchStream) send(_ context.Context, ops []watchOp) error {
	last := make(map[string]bool, len(ops))
	order := make([]string, 0, len(ops))
	for _, op := range ops {
		if _, seen := last[op.id]; !seen {
			order = append(order, op.id)
		}
		last[op.id] = op.watch
	}
	req := &pluginv1.WatchRequest{}
	for _, id := range order {
		if last[id] {
			req.Watch = append(req.Watch, id)
		} else {
			req.Cancel = append(req.Cancel, id)
		}
	}
	return st.gs.Send(req)
}

// openLocked returns the open stream, opening one if needed.
func (w *resultWatcher) openLocked() (*watchStream, error) {
	if w.stream != nil {
		return w.stream, nil
	}
	sctx, cancel := context.WithCancel(context.Background())
	gs, err := w.rpc.WatchResults(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	st := &watchStream{gs: gs, cancel: cancel, waiters: map[string][]*watchEntry{}}
	st.sends = coalesce.New(512, st.send)
	if !w.c.start(func() { w.receive(st) }) {
		cancel()
		st.sends.Close()
		return nil, w.c.errStopped("wait result")
	}
	w.stream = st
	return st, nil
}

// receive hands each answer to its watches until the stream ends, then
// fails the watches left (or moves them to the unary call when the plugin
// has no WatchResults).
func (w *resultWatcher) receive(st *watchStream) {
	var ready []*watchEntry
	var outs []watchOutcome
	for {
		resp, err := st.gs.Recv()
		if err != nil {
			w.end(st, err)
			return
		}
		ready, outs = ready[:0], outs[:0]
		w.mu.Lock()
		for _, r := range resp.Results {
			entries := st.waiters[r.TaskId]
			if len(entries) == 0 {
				continue // everyone gave up meanwhile
			}
			o := w.outcome(r)
			for _, e := range entries {
				e.finished = true
				ready, outs = append(ready, e), append(outs, o)
			}
			delete(st.waiters, r.TaskId)
		}
		w.mu.Unlock()
		for i, e := range ready {
			e.done(outs[i].body, outs[i].err)
			ready[i] = nil
		}
	}
}

func (w *resultWatcher) outcome(r *pluginv1.WatchedResult) watchOutcome {
	switch {
	case r.Found:
		return watchOutcome{body: r.Body}
	case r.Code == 0:
		return watchOutcome{err: notFound(r.TaskId)}
	default:
		err := status.Error(codes.Code(r.Code), r.Message)
		return watchOutcome{err: w.c.mapErr(context.Background(), "wait result", err)}
	}
}

func (w *resultWatcher) end(st *watchStream, err error) {
	st.cancel()
	// Nothing posts to st once it is ended (w.stream no longer names it), so
	// its sender can stop now instead of idling on.
	defer st.sends.Close()
	w.mu.Lock()
	st.ended = true
	if w.stream == st {
		w.stream = nil
	}
	unsupported := status.Code(err) == codes.Unimplemented
	if unsupported {
		w.unsupported = true
	}
	o := watchOutcome{err: w.c.mapErr(context.Background(), "wait result", err)}
	var failed []*watchEntry
	for id, entries := range st.waiters {
		for _, e := range entries {
			if unsupported {
				w.unaryLocked(e)
			} else {
				e.finished = true
				failed = append(failed, e)
			}
		}
		delete(st.waiters, id)
	}
	w.mu.Unlock()
	for _, e := range failed {
		e.done(nil, o.err)
	}
}
