package supervise

import (
	"context"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Control is the inspection and cancellation roles of a broker process.
type Control interface {
	sdk.Inspector
	sdk.Canceller
}

// Inspector is the inspection and cancellation calls of p's configured
// role, retried once on a restarted process. A WatchCancels that ends
// because the process died returns its error: the caller watches again.
func Inspector(p *Proc) Control { return supervisedInspector{p} }

type supervisedInspector struct{ p *Proc }

func (s supervisedInspector) Queues(ctx context.Context) ([]sdk.QueueStats, error) {
	return call(ctx, s.p, func(c *sdk.Client) ([]sdk.QueueStats, error) { return c.Inspector().Queues(ctx) })
}

func (s supervisedInspector) Messages(ctx context.Context, q sdk.MessageQuery) (sdk.MessagePage, error) {
	return call(ctx, s.p, func(c *sdk.Client) (sdk.MessagePage, error) { return c.Inspector().Messages(ctx, q) })
}

func (s supervisedInspector) Task(ctx context.Context, ref sdk.TaskRef) (sdk.MessageInfo, error) {
	return call(ctx, s.p, func(c *sdk.Client) (sdk.MessageInfo, error) { return c.Inspector().Task(ctx, ref) })
}

func (s supervisedInspector) Act(ctx context.Context, a sdk.Action) (sdk.ActionResult, error) {
	return call(ctx, s.p, func(c *sdk.Client) (sdk.ActionResult, error) { return c.Inspector().Act(ctx, a) })
}

func (s supervisedInspector) SetPaused(ctx context.Context, queue string, paused bool) error {
	_, err := call(ctx, s.p, func(c *sdk.Client) (struct{}, error) {
		return struct{}{}, c.Inspector().SetPaused(ctx, queue, paused)
	})
	return err
}

func (s supervisedInspector) Heartbeat(ctx context.Context, w sdk.WorkerInfo, ttl time.Duration) error {
	_, err := call(ctx, s.p, func(c *sdk.Client) (struct{}, error) {
		return struct{}{}, c.Inspector().Heartbeat(ctx, w, ttl)
	})
	return err
}

func (s supervisedInspector) Workers(ctx context.Context) ([]sdk.WorkerInfo, error) {
	return call(ctx, s.p, func(c *sdk.Client) ([]sdk.WorkerInfo, error) { return c.Inspector().Workers(ctx) })
}

func (s supervisedInspector) Cancel(ctx context.Context, taskID string) error {
	_, err := call(ctx, s.p, func(c *sdk.Client) (struct{}, error) {
		return struct{}{}, c.Inspector().Cancel(ctx, taskID)
	})
	return err
}

func (s supervisedInspector) WatchCancels(ctx context.Context, fn func([]string)) error {
	c, err := s.p.Get(ctx)
	if err != nil {
		return err
	}
	return c.Inspector().WatchCancels(ctx, fn)
}

// Interface guards
var _ Control = supervisedInspector{}
