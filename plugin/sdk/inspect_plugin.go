package sdk

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// inspectServer serves the Inspector service over the configured role,
// whichever it is, when it implements Inspector (and Canceller).
type inspectServer struct {
	pluginv1.UnimplementedInspectorServer
	srv *pluginServer
}

func (s *inspectServer) role() (any, error) {
	s.srv.mu.RLock()
	defer s.srv.mu.RUnlock()
	if s.srv.role == nil {
		return nil, errNotConfigured
	}
	return s.srv.role, nil
}

func (s *inspectServer) inspector() (Inspector, error) {
	r, err := s.role()
	if err != nil {
		return nil, err
	}
	i, ok := r.(Inspector)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "plugin %s: its %s cannot be inspected (no %q capability)", s.srv.p.Name, s.srv.kind, CapInspect)
	}
	return i, nil
}

func (s *inspectServer) canceller() (Canceller, error) {
	r, err := s.role()
	if err != nil {
		return nil, err
	}
	c, ok := r.(Canceller)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "plugin %s: its %s cannot cancel tasks (no %q capability)", s.srv.p.Name, s.srv.kind, CapCancel)
	}
	return c, nil
}

func (s *inspectServer) Queues(ctx context.Context, _ *pluginv1.QueuesRequest) (*pluginv1.QueuesResponse, error) {
	i, err := s.inspector()
	if err != nil {
		return nil, err
	}
	qs, err := i.Queues(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pluginv1.QueuesResponse{Queues: make([]*pluginv1.QueueStats, len(qs))}
	for n, q := range qs {
		resp.Queues[n] = queueStatsToProto(q)
	}
	return resp, nil
}

func (s *inspectServer) Messages(ctx context.Context, req *pluginv1.MessagesRequest) (*pluginv1.MessagesResponse, error) {
	i, err := s.inspector()
	if err != nil {
		return nil, err
	}
	page, err := i.Messages(ctx, MessageQuery{Queue: req.Queue, State: MessageState(req.State),
		Filter: filterFromProto(req.Filter), Cursor: req.Cursor, Limit: int(req.Limit)})
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pluginv1.MessagesResponse{Next: page.Next, Messages: make([]*pluginv1.MessageInfo, len(page.Messages))}
	for n, m := range page.Messages {
		resp.Messages[n] = messageInfoToProto(m)
	}
	return resp, nil
}

func (s *inspectServer) Task(ctx context.Context, req *pluginv1.InspectTaskRef) (*pluginv1.MessageInfo, error) {
	i, err := s.inspector()
	if err != nil {
		return nil, err
	}
	m, err := i.Task(ctx, TaskRef{TaskID: req.TaskId, Queue: req.Queue, State: MessageState(req.State), Ref: req.Ref})
	if err != nil {
		return nil, toStatus(err)
	}
	return messageInfoToProto(m), nil
}

func (s *inspectServer) Act(ctx context.Context, req *pluginv1.ActionRequest) (*pluginv1.ActionResponse, error) {
	i, err := s.inspector()
	if err != nil {
		return nil, err
	}
	res, err := i.Act(ctx, actionFromProto(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.ActionResponse{Matched: int64(res.Matched), Done: int64(res.Done)}, nil
}

func (s *inspectServer) SetPaused(ctx context.Context, req *pluginv1.SetPausedRequest) (*pluginv1.SetPausedResponse, error) {
	i, err := s.inspector()
	if err != nil {
		return nil, err
	}
	if err := i.SetPaused(ctx, req.Queue, req.Paused); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.SetPausedResponse{}, nil
}

func (s *inspectServer) Heartbeat(ctx context.Context, req *pluginv1.HeartbeatRequest) (*pluginv1.HeartbeatResponse, error) {
	i, err := s.inspector()
	if err != nil {
		return nil, err
	}
	if err := i.Heartbeat(ctx, workerFromProto(req.Worker), time.Duration(req.TtlMs)*time.Millisecond); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.HeartbeatResponse{}, nil
}

func (s *inspectServer) Workers(ctx context.Context, _ *pluginv1.WorkersRequest) (*pluginv1.WorkersResponse, error) {
	i, err := s.inspector()
	if err != nil {
		return nil, err
	}
	ws, err := i.Workers(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pluginv1.WorkersResponse{Workers: make([]*pluginv1.WorkerInfo, len(ws))}
	for n, w := range ws {
		resp.Workers[n] = workerToProto(w)
	}
	return resp, nil
}

func (s *inspectServer) Cancel(ctx context.Context, req *pluginv1.CancelRequest) (*pluginv1.CancelResponse, error) {
	c, err := s.canceller()
	if err != nil {
		return nil, err
	}
	if err := c.Cancel(ctx, req.TaskId); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.CancelResponse{}, nil
}

// WatchCancels streams the role's tombstones to the host until the host
// ends the call.
func (s *inspectServer) WatchCancels(_ *pluginv1.WatchCancelsRequest, gs pluginv1.Inspector_WatchCancelsServer) error {
	c, err := s.canceller()
	if err != nil {
		return err
	}
	var sendErr error
	ctx, cancel := context.WithCancel(gs.Context())
	defer cancel()
	err = c.WatchCancels(ctx, func(ids []string) {
		if sendErr != nil {
			return
		}
		if sendErr = gs.Send(&pluginv1.CancelEvent{TaskIds: ids}); sendErr != nil {
			cancel()
		}
	})
	if sendErr != nil {
		return sendErr
	}
	if err != nil && gs.Context().Err() == nil {
		return toStatus(err)
	}
	return nil
}

// Interface guards
var _ pluginv1.InspectorServer = (*inspectServer)(nil)
