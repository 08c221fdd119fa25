package sdk

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// hostServer serves the Host service over the host's Host implementation.
// The host serves it once per plugin process, through go-plugin's
// GRPCBroker, and the plugin keeps the connection.
type hostServer struct {
	pluginv1.UnimplementedHostServer
	h Host
}

func newHostServer(h Host) *hostServer { return &hostServer{h: h} }

func (s *hostServer) Kick(ctx context.Context, req *pluginv1.HostKickRequest) (*pluginv1.KickResponse, error) {
	msgs := make([]*wire.Message, len(req.Messages))
	for i, b := range req.Messages {
		m, err := wire.DecodeMessage(b)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "message %d: %v", i, err)
		}
		msgs[i] = m
	}
	if err := s.h.Kick(ctx, req.Broker, msgs); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.KickResponse{}, nil
}

func (s *hostServer) GetResult(ctx context.Context, req *pluginv1.TaskRef) (*pluginv1.ResultResponse, error) {
	res, err := s.h.GetResult(ctx, req.TaskId)
	if errors.Is(err, ErrNotFound) {
		return &pluginv1.ResultResponse{}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	b, err := wire.EncodeResult(res)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode the result of task %s: %v", req.TaskId, err)
	}
	return &pluginv1.ResultResponse{Found: true, Body: b}, nil
}

func (s *hostServer) BrokerInfo(ctx context.Context, req *pluginv1.BrokerInfoRequest) (*pluginv1.BrokerInfoResponse, error) {
	caps, err := s.h.BrokerCapabilities(ctx, req.Broker)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.BrokerInfoResponse{Capabilities: caps}, nil
}

// Interface guards
var (
	_ pluginv1.HostServer = (*hostServer)(nil)
)
