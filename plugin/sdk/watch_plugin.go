package sdk

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/taskiq-go/taskiq/internal/coalesce"
	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// WatchResults is the plugin side of the host's result waiters: one stream
// per host, answers batched into as few messages as arrive together. A
// backend that implements ResultWatcher holds the watches itself; one that
// only implements ResultWaiter gets a WaitResult call (and goroutine) per
// watched task id.
func (s *resultsServer) WatchResults(gs pluginv1.ResultBackend_WatchResultsServer) error {
	rb, err := s.backend()
	if err != nil {
		return err
	}
	ctx := gs.Context()
	var rw ResultWatcher
	switch b := rb.(type) {
	case ResultWatcher:
		rw = b
	case ResultWaiter:
		gw := &goroutineWatcher{ctx: ctx, w: b}
		defer gw.wg.Wait()
		rw = gw
	default:
		return status.Errorf(codes.Unimplemented, "result backend %s cannot wait for results (no %q capability)", s.srv.p.Name, CapWait)
	}
	// The coalescer's one flush at a time is also the one sender a gRPC
	// stream allows.
	out := coalesce.New(256, func(_ context.Context, rs []*pluginv1.WatchedResult) error {
		return gs.Send(&pluginv1.WatchResponse{Results: rs})
	})
	defer out.Close()
	// watch is one watched id; the map holding it is who may answer.
	type watch struct{ stop func() bool }
	var (
		mu      sync.Mutex
		watches = map[string]*watch{}
		closed  bool
	)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		closed = true
		for id, wt := range watches {
			if wt.stop != nil {
				wt.stop()
			}
			delete(watches, id)
		}
	}()
	for {
		req, err := gs.Recv()
		if err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		for _, id := range req.Cancel {
			if wt := watches[id]; wt != nil {
				delete(watches, id)
				if wt.stop != nil {
					wt.stop()
				}
			}
		}
		for _, id := range req.Watch {
			if watches[id] != nil {
				continue
			}
			wt := &watch{}
			watches[id] = wt
			// The lock is held: a done called meanwhile waits for it and
			// finds wt.stop set.
			mu.Unlock()
			stop := rw.WatchResult(id, func(body []byte, err error) {
				// Posting under the lock orders it before the Close below.
				mu.Lock()
				defer mu.Unlock()
				if watches[id] == wt && !closed {
					delete(watches, id)
					out.Post(watchedResult(id, body, err))
				}
			})
			mu.Lock()
			if watches[id] == wt {
				wt.stop = stop
			}
		}
		mu.Unlock()
	}
}

// goroutineWatcher is the ResultWatcher of a backend that can only block in
// WaitResult: a goroutine per watch, ended with ctx.
type goroutineWatcher struct {
	ctx context.Context
	w   ResultWaiter
	wg  sync.WaitGroup
}

func (g *goroutineWatcher) WatchResult(taskID string, done func([]byte, error)) func() bool {
	ctx, cancel := context.WithCancel(g.ctx)
	var mu sync.Mutex
	finished := false
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer cancel()
		body, err := g.w.WaitResult(ctx, taskID)
		mu.Lock()
		mine := !finished && ctx.Err() == nil
		finished = true
		mu.Unlock()
		if mine {
			done(body, err)
		}
	}()
	return func() bool {
		mu.Lock()
		defer mu.Unlock()
		if finished {
			return false
		}
		finished = true
		cancel()
		return true
	}
}

func watchedResult(id string, body []byte, err error) *pluginv1.WatchedResult {
	r := &pluginv1.WatchedResult{TaskId: id}
	switch {
	case err == nil:
		r.Found, r.Body = true, body
	case errors.Is(err, ErrNotFound):
	default:
		st := status.Convert(toStatus(err))
		r.Code, r.Message = int32(st.Code()), st.Message()
	}
	return r
}
