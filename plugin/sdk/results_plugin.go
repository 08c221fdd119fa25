package sdk

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// resultsServer serves the ResultBackend service over the configured backend.
type resultsServer struct {
	pluginv1.UnimplementedResultBackendServer
	srv *pluginServer
}

func (s *resultsServer) backend() (ResultBackend, error) {
	r, err := s.srv.configured(KindResultBackend)
	if err != nil {
		return nil, err
	}
	return r.(ResultBackend), nil
}

func (s *resultsServer) SetResults(ctx context.Context, req *pluginv1.SetResultsRequest) (*pluginv1.SetResultsResponse, error) {
	rb, err := s.backend()
	if err != nil {
		return nil, err
	}
	rs := make([]StoredResult, len(req.Results))
	for i, r := range req.Results {
		if len(r.Body) > s.srv.maxSize {
			return nil, toStatus(tooLarge("the result of task "+r.TaskId, len(r.Body), s.srv.maxSize))
		}
		rs[i] = StoredResult{TaskID: r.TaskId, Body: r.Body}
	}
	if err := rb.SetResults(ctx, rs); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.SetResultsResponse{}, nil
}

// found turns a (body, error) pair into a ResultResponse: ErrNotFound is
// found=false, not an error.
func found(body []byte, err error) (*pluginv1.ResultResponse, error) {
	if errors.Is(err, ErrNotFound) {
		return &pluginv1.ResultResponse{}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.ResultResponse{Found: true, Body: body}, nil
}

func (s *resultsServer) GetResult(ctx context.Context, req *pluginv1.TaskRef) (*pluginv1.ResultResponse, error) {
	rb, err := s.backend()
	if err != nil {
		return nil, err
	}
	return found(rb.GetResult(ctx, req.TaskId))
}

func (s *resultsServer) IsReady(ctx context.Context, req *pluginv1.TaskRef) (*pluginv1.IsReadyResponse, error) {
	rb, err := s.backend()
	if err != nil {
		return nil, err
	}
	ok, err := rb.IsReady(ctx, req.TaskId)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.IsReadyResponse{Ready: ok}, nil
}

func (s *resultsServer) WaitResult(ctx context.Context, req *pluginv1.TaskRef) (*pluginv1.ResultResponse, error) {
	rb, err := s.backend()
	if err != nil {
		return nil, err
	}
	w, ok := rb.(ResultWaiter)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "result backend %s cannot wait for results (no %q capability)", s.srv.p.Name, CapWait)
	}
	return found(w.WaitResult(ctx, req.TaskId))
}

func (s *resultsServer) SetProgress(ctx context.Context, req *pluginv1.SetProgressRequest) (*pluginv1.SetProgressResponse, error) {
	rb, err := s.backend()
	if err != nil {
		return nil, err
	}
	if len(req.Body) > s.srv.maxSize {
		return nil, toStatus(tooLarge("the progress of task "+req.TaskId, len(req.Body), s.srv.maxSize))
	}
	if err := rb.SetProgress(ctx, req.TaskId, req.Body); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.SetProgressResponse{}, nil
}

func (s *resultsServer) GetProgress(ctx context.Context, req *pluginv1.TaskRef) (*pluginv1.ResultResponse, error) {
	rb, err := s.backend()
	if err != nil {
		return nil, err
	}
	return found(rb.GetProgress(ctx, req.TaskId))
}

// Interface guards
var (
	_ pluginv1.ResultBackendServer = (*resultsServer)(nil)
)
