package sdk

import (
	"context"
	"errors"
	"fmt"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// hostFor returns the Host client for a broker id, dialling it the first
// time: the host serves its Host service once per plugin process.
func (s *pluginServer) hostFor(id uint32) (Host, error) {
	if id == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.host != nil && s.hostID == id {
		return s.host, nil
	}
	if s.gbroker == nil {
		return nil, errors.New("no go-plugin broker to reach the host through")
	}
	limit := grpcLimit(s.maxSize)
	conn, err := s.gbroker.DialWithOptions(id, dialOptions(limit)...)
	if err != nil {
		return nil, fmt.Errorf("dial the host service: %w", err)
	}
	if s.hostConn != nil {
		_ = s.hostConn.Close()
	}
	s.hostConn, s.hostID = conn, id
	s.host = &hostClient{rpc: pluginv1.NewHostClient(conn), maxSize: s.maxSize}
	return s.host, nil
}

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
	_ Host = (*hostClient)(nil)
)
