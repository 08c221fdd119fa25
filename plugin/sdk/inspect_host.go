package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// Inspector returns the configured role's inspection and cancellation
// calls; valid after Configure. The value implements Inspector and
// Canceller; a call the plugin does not serve fails with ErrUnsupported
// (check the role's capabilities, CapInspect and CapCancel, first).
func (c *Client) Inspector() interface {
	Inspector
	Canceller
} {
	return &remoteInspector{c: c, rpc: pluginv1.NewInspectorClient(c.conn)}
}

// remoteInspector is an Inspector and Canceller served by a plugin process.
type remoteInspector struct {
	c   *Client
	rpc pluginv1.InspectorClient
}

func (r *remoteInspector) Queues(ctx context.Context) ([]QueueStats, error) {
	resp, err := r.rpc.Queues(ctx, &pluginv1.QueuesRequest{})
	if err != nil {
		return nil, r.c.mapErr(ctx, "inspect queues", err)
	}
	out := make([]QueueStats, len(resp.Queues))
	for i, q := range resp.Queues {
		out[i] = queueStatsFromProto(q)
	}
	return out, nil
}

func (r *remoteInspector) Messages(ctx context.Context, q MessageQuery) (MessagePage, error) {
	resp, err := r.rpc.Messages(ctx, &pluginv1.MessagesRequest{Queue: q.Queue, State: string(q.State),
		Filter: filterToProto(q.Filter), Cursor: q.Cursor, Limit: int32(q.Limit)})
	if err != nil {
		return MessagePage{}, r.c.mapErr(ctx, "inspect messages", err)
	}
	page := MessagePage{Next: resp.Next, Messages: make([]MessageInfo, len(resp.Messages))}
	for i, m := range resp.Messages {
		page.Messages[i] = messageInfoFromProto(m)
	}
	return page, nil
}

func (r *remoteInspector) Task(ctx context.Context, ref TaskRef) (MessageInfo, error) {
	resp, err := r.rpc.Task(ctx, &pluginv1.InspectTaskRef{TaskId: ref.TaskID, Queue: ref.Queue, State: string(ref.State), Ref: ref.Ref})
	if err != nil {
		err = r.c.mapErr(ctx, "inspect task", err)
		if errors.Is(err, ErrNotFound) {
			return MessageInfo{}, fmt.Errorf("task %s: %w", ref.TaskID, ErrTaskNotFound)
		}
		return MessageInfo{}, err
	}
	return messageInfoFromProto(resp), nil
}

func (r *remoteInspector) Act(ctx context.Context, a Action) (ActionResult, error) {
	resp, err := r.rpc.Act(ctx, actionToProto(a))
	if err != nil {
		return ActionResult{}, r.c.mapErr(ctx, "inspect act", err)
	}
	return ActionResult{Matched: int(resp.Matched), Done: int(resp.Done)}, nil
}

func (r *remoteInspector) SetPaused(ctx context.Context, queue string, paused bool) error {
	_, err := r.rpc.SetPaused(ctx, &pluginv1.SetPausedRequest{Queue: queue, Paused: paused})
	return r.c.mapErr(ctx, "pause queue", err)
}

func (r *remoteInspector) Heartbeat(ctx context.Context, w WorkerInfo, ttl time.Duration) error {
	_, err := r.rpc.Heartbeat(ctx, &pluginv1.HeartbeatRequest{Worker: workerToProto(w), TtlMs: ttl.Milliseconds()})
	return r.c.mapErr(ctx, "heartbeat", err)
}

func (r *remoteInspector) Workers(ctx context.Context) ([]WorkerInfo, error) {
	resp, err := r.rpc.Workers(ctx, &pluginv1.WorkersRequest{})
	if err != nil {
		return nil, r.c.mapErr(ctx, "inspect workers", err)
	}
	out := make([]WorkerInfo, len(resp.Workers))
	for i, w := range resp.Workers {
		out[i] = workerFromProto(w)
	}
	return out, nil
}

func (r *remoteInspector) Cancel(ctx context.Context, taskID string) error {
	_, err := r.rpc.Cancel(ctx, &pluginv1.CancelRequest{TaskId: taskID})
	return r.c.mapErr(ctx, "cancel", err)
}

// WatchCancels runs the watch in the caller's goroutine; it ends when ctx
// ends (nil) or the stream breaks (the plugin exited, say).
func (r *remoteInspector) WatchCancels(ctx context.Context, fn func([]string)) error {
	gs, err := r.rpc.WatchCancels(ctx, &pluginv1.WatchCancelsRequest{})
	if err != nil {
		return r.c.mapErr(ctx, "watch cancels", err)
	}
	for {
		ev, err := gs.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return r.c.mapErr(ctx, "watch cancels", err)
		}
		fn(ev.TaskIds)
	}
}

// Interface guards
var (
	_ Inspector = (*remoteInspector)(nil)
	_ Canceller = (*remoteInspector)(nil)
)
