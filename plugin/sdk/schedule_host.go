package sdk

import (
	"context"
	"fmt"
	"time"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// remoteSchedules is a ScheduleSource served by a plugin process. It
// implements ScheduleHooks and ScheduleState too; the state calls return
// ErrUnsupported when the plugin's source has no state.
type remoteSchedules struct {
	c   *Client
	rpc pluginv1.ScheduleSourceClient
}

func (r *remoteSchedules) Schedules(ctx context.Context) ([]Schedule, error) {
	resp, err := r.rpc.ListSchedules(ctx, &pluginv1.ListSchedulesRequest{})
	if err != nil {
		return nil, r.c.mapErr(ctx, "list schedules", err)
	}
	out := make([]Schedule, 0, len(resp.Schedules))
	for _, p := range resp.Schedules {
		s, err := scheduleFromProto(p)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: list schedules: %w", r.c.name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (r *remoteSchedules) Add(ctx context.Context, s Schedule) error {
	p, err := scheduleToProto(s)
	if err != nil {
		return err
	}
	_, err = r.rpc.AddSchedule(ctx, &pluginv1.AddScheduleRequest{Schedule: p})
	return r.c.mapErr(ctx, "add schedule "+s.ID, err)
}

func (r *remoteSchedules) Delete(ctx context.Context, id string) error {
	resp, err := r.rpc.DeleteSchedule(ctx, &pluginv1.DeleteScheduleRequest{Id: id})
	if err != nil {
		return r.c.mapErr(ctx, "delete schedule "+id, err)
	}
	if !resp.Found {
		return fmt.Errorf("plugin %s: %w: %q", r.c.name, ErrScheduleNotFound, id)
	}
	return nil
}

func (r *remoteSchedules) sent(ctx context.Context, s Schedule, sent bool) error {
	p, err := scheduleToProto(s)
	if err != nil {
		return err
	}
	_, err = r.rpc.ScheduleSent(ctx, &pluginv1.ScheduleSentRequest{Schedule: p, Sent: sent})
	return r.c.mapErr(ctx, "schedule sent hook", err)
}

func (r *remoteSchedules) PreSend(ctx context.Context, s Schedule) error {
	return r.sent(ctx, s, false)
}
func (r *remoteSchedules) PostSend(ctx context.Context, s Schedule) error {
	return r.sent(ctx, s, true)
}

func (r *remoteSchedules) LastFired(ctx context.Context, ids []string) (map[string]time.Time, error) {
	resp, err := r.rpc.LastFired(ctx, &pluginv1.LastFiredRequest{Ids: ids})
	if err != nil {
		return nil, r.c.mapErr(ctx, "last fired", err)
	}
	out := make(map[string]time.Time, len(resp.SlotUnixMs))
	for id, ms := range resp.SlotUnixMs {
		out[id] = time.UnixMilli(ms).UTC()
	}
	return out, nil
}

func (r *remoteSchedules) MarkFired(ctx context.Context, id string, slot time.Time) error {
	_, err := r.rpc.MarkFired(ctx, &pluginv1.MarkFiredRequest{Id: id, SlotUnixMs: slot.UnixMilli()})
	return r.c.mapErr(ctx, "mark fired", err)
}

func (r *remoteSchedules) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	resp, err := r.rpc.AcquireLease(ctx, &pluginv1.LeaseRequest{Name: name, Holder: holder, TtlMs: ttl.Milliseconds()})
	if err != nil {
		return false, r.c.mapErr(ctx, "acquire lease", err)
	}
	return resp.Held, nil
}

func (r *remoteSchedules) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := r.rpc.ReleaseLease(ctx, &pluginv1.LeaseRequest{Name: name, Holder: holder})
	return r.c.mapErr(ctx, "release lease", err)
}

// Close asks the plugin to close the source; the process stays up until
// Client.Close.
func (r *remoteSchedules) Close(ctx context.Context) error { return r.c.shutdownRole(ctx) }

// ScheduleSource returns the plugin's schedule source; valid after
// Configure(KindScheduleSource, ...). The value also implements
// ScheduleHooks and ScheduleState (whose calls return ErrUnsupported when
// the plugin lacks CapScheduleState).
func (c *Client) ScheduleSource() ScheduleSource {
	c.shimMu.Lock()
	defer c.shimMu.Unlock()
	if c.schedules == nil {
		c.schedules = &remoteSchedules{c: c, rpc: pluginv1.NewScheduleSourceClient(c.conn)}
	}
	return c.schedules
}

// Interface guards
var (
	_ ScheduleSource = (*remoteSchedules)(nil)
	_ ScheduleHooks  = (*remoteSchedules)(nil)
	_ ScheduleState  = (*remoteSchedules)(nil)
)
