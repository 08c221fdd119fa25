package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// scheduleServer serves the ScheduleSource service over the configured
// source.
type scheduleServer struct {
	pluginv1.UnimplementedScheduleSourceServer
	srv *pluginServer
}

func (s *scheduleServer) source() (ScheduleSource, error) {
	r, err := s.srv.configured(KindScheduleSource)
	if err != nil {
		return nil, err
	}
	return r.(ScheduleSource), nil
}

func (s *scheduleServer) state() (ScheduleState, error) {
	src, err := s.source()
	if err != nil {
		return nil, err
	}
	st, ok := src.(ScheduleState)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "schedule source %s stores no scheduler state (no %q capability)", s.srv.p.Name, CapScheduleState)
	}
	return st, nil
}

func (s *scheduleServer) ListSchedules(ctx context.Context, _ *pluginv1.ListSchedulesRequest) (*pluginv1.ListSchedulesResponse, error) {
	src, err := s.source()
	if err != nil {
		return nil, err
	}
	list, err := src.Schedules(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pluginv1.ListSchedulesResponse{Schedules: make([]*pluginv1.ScheduleSpec, 0, len(list))}
	for _, sc := range list {
		p, err := scheduleToProto(sc)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		resp.Schedules = append(resp.Schedules, p)
	}
	return resp, nil
}

func (s *scheduleServer) decode(p *pluginv1.ScheduleSpec) (Schedule, error) {
	if p == nil {
		return Schedule{}, status.Error(codes.InvalidArgument, "no schedule in the request")
	}
	sc, err := scheduleFromProto(p)
	if err != nil {
		return Schedule{}, status.Error(codes.InvalidArgument, err.Error())
	}
	return sc, nil
}

func (s *scheduleServer) AddSchedule(ctx context.Context, req *pluginv1.AddScheduleRequest) (*pluginv1.AddScheduleResponse, error) {
	src, err := s.source()
	if err != nil {
		return nil, err
	}
	sc, err := s.decode(req.Schedule)
	if err != nil {
		return nil, err
	}
	if err := src.Add(ctx, sc); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.AddScheduleResponse{}, nil
}

func (s *scheduleServer) DeleteSchedule(ctx context.Context, req *pluginv1.DeleteScheduleRequest) (*pluginv1.DeleteScheduleResponse, error) {
	src, err := s.source()
	if err != nil {
		return nil, err
	}
	err = src.Delete(ctx, req.Id)
	if errors.Is(err, ErrScheduleNotFound) {
		return &pluginv1.DeleteScheduleResponse{}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.DeleteScheduleResponse{Found: true}, nil
}

func (s *scheduleServer) ScheduleSent(ctx context.Context, req *pluginv1.ScheduleSentRequest) (*pluginv1.ScheduleSentResponse, error) {
	src, err := s.source()
	if err != nil {
		return nil, err
	}
	hooks, ok := src.(ScheduleHooks)
	if !ok {
		return &pluginv1.ScheduleSentResponse{}, nil
	}
	sc, err := s.decode(req.Schedule)
	if err != nil {
		return nil, err
	}
	if req.Sent {
		err = hooks.PostSend(ctx, sc)
	} else {
		err = hooks.PreSend(ctx, sc)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.ScheduleSentResponse{}, nil
}

func (s *scheduleServer) LastFired(ctx context.Context, req *pluginv1.LastFiredRequest) (*pluginv1.LastFiredResponse, error) {
	st, err := s.state()
	if err != nil {
		return nil, err
	}
	got, err := st.LastFired(ctx, req.Ids)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pluginv1.LastFiredResponse{SlotUnixMs: make(map[string]int64, len(got))}
	for id, t := range got {
		resp.SlotUnixMs[id] = t.UnixMilli()
	}
	return resp, nil
}

func (s *scheduleServer) MarkFired(ctx context.Context, req *pluginv1.MarkFiredRequest) (*pluginv1.MarkFiredResponse, error) {
	st, err := s.state()
	if err != nil {
		return nil, err
	}
	if err := st.MarkFired(ctx, req.Id, time.UnixMilli(req.SlotUnixMs).UTC()); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.MarkFiredResponse{}, nil
}

func (s *scheduleServer) AcquireLease(ctx context.Context, req *pluginv1.LeaseRequest) (*pluginv1.LeaseResponse, error) {
	st, err := s.state()
	if err != nil {
		return nil, err
	}
	if req.TtlMs <= 0 {
		return nil, status.Error(codes.InvalidArgument, fmt.Sprintf("lease %q: the ttl must be positive", req.Name))
	}
	held, err := st.AcquireLease(ctx, req.Name, req.Holder, time.Duration(req.TtlMs)*time.Millisecond)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.LeaseResponse{Held: held}, nil
}

func (s *scheduleServer) ReleaseLease(ctx context.Context, req *pluginv1.LeaseRequest) (*pluginv1.LeaseResponse, error) {
	st, err := s.state()
	if err != nil {
		return nil, err
	}
	if err := st.ReleaseLease(ctx, req.Name, req.Holder); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.LeaseResponse{}, nil
}

// Interface guards
var _ pluginv1.ScheduleSourceServer = (*scheduleServer)(nil)
