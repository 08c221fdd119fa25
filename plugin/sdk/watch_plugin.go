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
// per host, one WaitResult call of the backend per watched task id, answers
// batched into as few messages as arrive together.
func (s *resultsServer) WatchResults(gs pluginv1.ResultBackend_WatchResultsServer) error {
	rb, err := s.backend()
	if err != nil {
		return err
	}
	w, ok := rb.(ResultWaiter)
	if !ok {
		return status.Errorf(codes.Unimplemented, "result backend %s cannot wait for results (no %q capability)", s.srv.p.Name, CapWait)
	}
	ctx := gs.Context()
	// The coalescer's one flush at a time is also the one sender a gRPC
	// stream allows.
	out := coalesce.New(256, func(_ context.Context, rs []*pluginv1.WatchedResult) error {
		return gs.Send(&pluginv1.WatchResponse{Results: rs})
	})
	type watch struct{ cancel context.CancelFunc }
	var (
		mu      sync.Mutex
		watches = map[string]*watch{}
		wg      sync.WaitGroup
	)
	defer func() {
		mu.Lock()
		for _, wt := range watches {
			wt.cancel()
		}
		mu.Unlock()
		wg.Wait()
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
				wt.cancel()
				delete(watches, id)
			}
		}
		for _, id := range req.Watch {
			if watches[id] != nil {
				continue
			}
			wctx, cancel := context.WithCancel(ctx)
			wt := &watch{cancel: cancel}
			watches[id] = wt
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cancel()
				body, err := w.WaitResult(wctx, id)
				mu.Lock()
				mine := watches[id] == wt
				if mine {
					delete(watches, id)
				}
				mu.Unlock()
				if !mine || wctx.Err() != nil {
					return // cancelled: nobody waits for this answer
				}
				_ = out.Do(ctx, watchedResult(id, body, err))
			}()
		}
		mu.Unlock()
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
