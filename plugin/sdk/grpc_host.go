package sdk

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// ---- host side: serves the host's Host to a plugin ----

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

// ---- plugin side: the host as a plugin sees it ----

// hostClient implements Host over the Host service.
type hostClient struct {
	rpc     pluginv1.HostClient
	maxSize int
}

func (h *hostClient) Kick(ctx context.Context, broker string, msgs []*wire.Message) error {
	req := &pluginv1.HostKickRequest{Broker: broker, Messages: make([][]byte, len(msgs))}
	for i, m := range msgs {
		b, err := m.AppendJSON(nil)
		if err != nil {
			return fmt.Errorf("host kick: encode message %s: %w", m.TaskID, err)
		}
		if len(b) > h.maxSize {
			return tooLarge(fmt.Sprintf("message %s (task %s)", m.TaskID, m.TaskName), len(b), h.maxSize)
		}
		req.Messages[i] = b
	}
	if _, err := h.rpc.Kick(ctx, req); err != nil {
		return fromStatus(ctx, "host kick", err)
	}
	return nil
}

func (h *hostClient) GetResult(ctx context.Context, taskID string) (*wire.Result, error) {
	resp, err := h.rpc.GetResult(ctx, &pluginv1.TaskRef{TaskId: taskID})
	if err != nil {
		return nil, fromStatus(ctx, "host get result", err)
	}
	if !resp.Found {
		return nil, notFound(taskID)
	}
	return wire.DecodeResult(resp.Body)
}

func (h *hostClient) BrokerCapabilities(ctx context.Context, broker string) ([]string, error) {
	resp, err := h.rpc.BrokerInfo(ctx, &pluginv1.BrokerInfoRequest{Broker: broker})
	if err != nil {
		return nil, fromStatus(ctx, "host broker info", err)
	}
	return resp.Capabilities, nil
}

// Interface guards
var (
	_ Host                = (*hostClient)(nil)
	_ pluginv1.HostServer = (*hostServer)(nil)
)
