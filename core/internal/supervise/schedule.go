package supervise

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/taskiq-go/taskiq/internal/config"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// StartScheduleSources launches and configures the schedule_source blocks
// of f (only the scheduler and the `taskiq schedule` commands need them, so
// StartAll leaves them out).
func StartScheduleSources(ctx context.Context, f *config.File, host Host, logger hclog.Logger) ([]*Proc, hcl.Diagnostics) {
	var procs []*Proc
	var diags hcl.Diagnostics
	for _, b := range f.ScheduleSources {
		p, d := startPlugin(ctx, f, b, host, logger)
		diags = append(diags, d...)
		if p != nil {
			procs = append(procs, p)
		}
	}
	return procs, diags
}

// Schedules is the schedule-source role of p, retried once on a restarted
// process. It implements sdk.ScheduleHooks and sdk.ScheduleState too.
func Schedules(p *Proc) sdk.ScheduleSource { return supervisedSchedules{p} }

type supervisedSchedules struct{ p *Proc }

func (s supervisedSchedules) do(ctx context.Context, fn func(src sdk.ScheduleSource) error) error {
	_, err := call(ctx, s.p, func(c *sdk.Client) (struct{}, error) { return struct{}{}, fn(c.ScheduleSource()) })
	return err
}

func (s supervisedSchedules) Schedules(ctx context.Context) ([]sdk.Schedule, error) {
	return call(ctx, s.p, func(c *sdk.Client) ([]sdk.Schedule, error) { return c.ScheduleSource().Schedules(ctx) })
}

func (s supervisedSchedules) Add(ctx context.Context, sc sdk.Schedule) error {
	return s.do(ctx, func(src sdk.ScheduleSource) error { return src.Add(ctx, sc) })
}

func (s supervisedSchedules) Delete(ctx context.Context, id string) error {
	return s.do(ctx, func(src sdk.ScheduleSource) error { return src.Delete(ctx, id) })
}

func (s supervisedSchedules) PreSend(ctx context.Context, sc sdk.Schedule) error {
	return s.do(ctx, func(src sdk.ScheduleSource) error { return src.(sdk.ScheduleHooks).PreSend(ctx, sc) })
}

func (s supervisedSchedules) PostSend(ctx context.Context, sc sdk.Schedule) error {
	return s.do(ctx, func(src sdk.ScheduleSource) error { return src.(sdk.ScheduleHooks).PostSend(ctx, sc) })
}

func (s supervisedSchedules) LastFired(ctx context.Context, ids []string) (map[string]time.Time, error) {
	return call(ctx, s.p, func(c *sdk.Client) (map[string]time.Time, error) {
		return c.ScheduleSource().(sdk.ScheduleState).LastFired(ctx, ids)
	})
}

func (s supervisedSchedules) MarkFired(ctx context.Context, id string, slot time.Time) error {
	return s.do(ctx, func(src sdk.ScheduleSource) error { return src.(sdk.ScheduleState).MarkFired(ctx, id, slot) })
}

func (s supervisedSchedules) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	return call(ctx, s.p, func(c *sdk.Client) (bool, error) {
		return c.ScheduleSource().(sdk.ScheduleState).AcquireLease(ctx, name, holder, ttl)
	})
}

func (s supervisedSchedules) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.do(ctx, func(src sdk.ScheduleSource) error { return src.(sdk.ScheduleState).ReleaseLease(ctx, name, holder) })
}

// Close is a no-op: the process is stopped by the App's closer.
func (s supervisedSchedules) Close(context.Context) error { return nil }

// Interface guards
var (
	_ sdk.ScheduleSource = supervisedSchedules{}
	_ sdk.ScheduleHooks  = supervisedSchedules{}
	_ sdk.ScheduleState  = supervisedSchedules{}
)
