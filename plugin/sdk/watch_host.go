package sdk

import (
	"context"
	"errors"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/taskiq-go/taskiq/internal/coalesce"
	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// errWatchUnsupported tells WaitResult to use the unary call: the plugin
// predates WatchResults.
var errWatchUnsupported = errors.New("plugin cannot watch results")

// resultWatcher is the host side: every WaitResult of a Client shares one
// WatchResults stream. The first waiter of a task id sends a watch, the last
// one to give up sends a cancel; the answer goes to all of them.
type resultWatcher struct {
	c   *Client
	rpc pluginv1.ResultBackendClient

	mu          sync.Mutex
	stream      *watchStream
	unsupported bool
}

// watchStream is one open WatchResults stream and its waiters. Its fields
// are guarded by resultWatcher.mu.
type watchStream struct {
	gs      pluginv1.ResultBackend_WatchResultsClient
	cancel  context.CancelFunc
	waiters map[string][]chan watchOutcome
	// sends sends watches and cancels, posted under the lock in the order
	// the waiters came and went; in a batch the last op of each id wins.
	sends *coalesce.Coalescer[watchOp]
	ended bool
}

type watchOp struct {
	id    string
	watch bool
}

type watchOutcome struct {
	body []byte
	err  error
}

// wait waits for taskID's result over the shared stream.
func (w *resultWatcher) wait(ctx context.Context, taskID string) ([]byte, error) {
	ch := make(chan watchOutcome, 1)
	w.mu.Lock()
	if w.unsupported {
		w.mu.Unlock()
		return nil, errWatchUnsupported
	}
	st, err := w.openLocked()
	if err != nil {
		w.mu.Unlock()
		return nil, w.c.mapErr(ctx, "wait result", err)
	}
	if len(st.waiters[taskID]) == 0 {
		w.queueLocked(st, watchOp{id: taskID, watch: true})
	}
	st.waiters[taskID] = append(st.waiters[taskID], ch)
	w.mu.Unlock()
	select {
	case o := <-ch:
		return o.body, o.err
	case <-ctx.Done():
		w.mu.Lock()
		chans := st.waiters[taskID]
		for i, c := range chans {
			if c == ch {
				chans = append(chans[:i], chans[i+1:]...)
				break
			}
		}
		if len(chans) > 0 {
			st.waiters[taskID] = chans
		} else if _, waiting := st.waiters[taskID]; waiting {
			delete(st.waiters, taskID)
			w.queueLocked(st, watchOp{id: taskID})
		}
		w.mu.Unlock()
		return nil, ctx.Err()
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
	st := &watchStream{gs: gs, cancel: cancel, waiters: map[string][]chan watchOutcome{}}
	st.sends = coalesce.New(512, st.send)
	if !w.c.start(func() { w.receive(st) }) {
		cancel()
		st.sends.Close()
		return nil, w.c.errStopped("wait result")
	}
	w.stream = st
	return st, nil
}

// receive hands each answer to its waiters until the stream ends, then
// fails the waiters left (or sends them to the unary call when the plugin
// has no WatchResults).
func (w *resultWatcher) receive(st *watchStream) {
	for {
		resp, err := st.gs.Recv()
		if err != nil {
			w.end(st, err)
			return
		}
		w.mu.Lock()
		for _, r := range resp.Results {
			chans := st.waiters[r.TaskId]
			if len(chans) == 0 {
				continue // everyone gave up meanwhile
			}
			o := w.outcome(r)
			for _, ch := range chans {
				ch <- o
			}
			delete(st.waiters, r.TaskId)
		}
		w.mu.Unlock()
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
	defer w.mu.Unlock()
	st.ended = true
	if w.stream == st {
		w.stream = nil
	}
	o := watchOutcome{err: w.c.mapErr(context.Background(), "wait result", err)}
	if status.Code(err) == codes.Unimplemented {
		w.unsupported = true
		o.err = errWatchUnsupported
	}
	for id, chans := range st.waiters {
		for _, ch := range chans {
			ch <- o
		}
		delete(st.waiters, id)
	}
}
