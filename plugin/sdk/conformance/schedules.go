package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// TestScheduleSource runs the schedule source conformance suite. launch
// must return a fresh, empty source (isolated from every other one it
// returned) through the plugin's process boundary, closed when its test
// ends. caps are the capabilities the source claims: without
// sdk.CapScheduleWrite only listing is checked, without
// sdk.CapScheduleState the state subtests are skipped. OneShotDeletedAfterSend
// expects taskiq's behaviour (a one-shot schedule is deleted by its source's
// PostSend); a source that keeps them says so with WithSkip.
func TestScheduleSource(t *testing.T, launch func(t *testing.T) sdk.ScheduleSource, caps []string, opts ...Option) {
	o := newOptions(opts)
	run := func(name string, need []string, f func(t *testing.T, src sdk.ScheduleSource, ctx context.Context)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			skipUnclaimed(t, o, caps, name, need, "schedule source")
			ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
			t.Cleanup(cancel)
			f(t, launch(t), ctx)
		})
	}
	run("AddListDelete", []string{sdk.CapScheduleWrite}, scheduleAddListDelete)
	run("OneShotDeletedAfterSend", []string{sdk.CapScheduleWrite}, scheduleOneShot)
	run("LastFired", []string{sdk.CapScheduleState}, scheduleLastFired)
	run("Lease", []string{sdk.CapScheduleState}, scheduleLease)
}

// sampleSchedules are one schedule of each kind, with every field set.
func sampleSchedules() []sdk.Schedule {
	at := time.Date(2031, 5, 4, 3, 2, 0, 0, time.UTC)
	return []sdk.Schedule{
		{ID: "conf-cron", TaskName: "conf:cron", Cron: "*/5 * * * *", CronOffset: "Europe/Berlin",
			Args:   []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`"two"`)},
			Kwargs: map[string]json.RawMessage{"k": json.RawMessage(`{"x":[1,2]}`)},
			Labels: map[string]any{"queue_name": "low"}, Timezone: "Europe/Berlin",
			Jitter: 3 * time.Second, Catchup: "all", CatchupWindow: 10 * time.Minute, Overlap: "skip"},
		{ID: "conf-interval", TaskName: "conf:interval", Interval: 90 * time.Second, Phase: 30 * time.Second,
			Args: []json.RawMessage{}, Paused: true,
			StartAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), EndAt: time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "conf-at", TaskName: "conf:at", Time: at, Args: []json.RawMessage{json.RawMessage(`null`)}},
	}
}

func byID(list []sdk.Schedule) map[string]sdk.Schedule {
	m := make(map[string]sdk.Schedule, len(list))
	for _, s := range list {
		m[s.ID] = s
	}
	return m
}

func requireSameSchedule(t *testing.T, want, got sdk.Schedule) {
	t.Helper()
	require.Equal(t, want.TaskName, got.TaskName, "schedule %s: task name", want.ID)
	require.Equal(t, want.Cron, got.Cron, "schedule %s: cron", want.ID)
	require.Equal(t, want.Interval, got.Interval, "schedule %s: interval", want.ID)
	require.True(t, want.Time.Equal(got.Time), "schedule %s: time %s, got %s", want.ID, want.Time, got.Time)
	require.Equal(t, len(want.Args), len(got.Args), "schedule %s: args", want.ID)
	for i := range want.Args {
		require.JSONEq(t, string(want.Args[i]), string(got.Args[i]), "schedule %s: arg %d", want.ID, i)
	}
	require.Equal(t, len(want.Kwargs), len(got.Kwargs), "schedule %s: kwargs", want.ID)
	for k, v := range want.Kwargs {
		require.JSONEq(t, string(v), string(got.Kwargs[k]), "schedule %s: kwarg %s", want.ID, k)
	}
	wl, _ := json.Marshal(want.Labels)
	gl, _ := json.Marshal(got.Labels)
	if len(want.Labels) > 0 || len(got.Labels) > 0 {
		require.JSONEq(t, string(wl), string(gl), "schedule %s: labels", want.ID)
	}
	require.Equal(t, want.Timezone, got.Timezone, "schedule %s: timezone", want.ID)
	require.Equal(t, want.Phase, got.Phase, "schedule %s: phase", want.ID)
	require.Equal(t, want.Jitter, got.Jitter, "schedule %s: jitter", want.ID)
	require.Equal(t, want.Catchup, got.Catchup, "schedule %s: catchup", want.ID)
	require.Equal(t, want.CatchupWindow, got.CatchupWindow, "schedule %s: catchup_window", want.ID)
	require.Equal(t, want.Overlap, got.Overlap, "schedule %s: overlap", want.ID)
	require.Equal(t, want.Paused, got.Paused, "schedule %s: paused", want.ID)
	require.True(t, want.StartAt.Equal(got.StartAt), "schedule %s: start_at", want.ID)
	require.True(t, want.EndAt.Equal(got.EndAt), "schedule %s: end_at", want.ID)
}

func scheduleAddListDelete(t *testing.T, src sdk.ScheduleSource, ctx context.Context) {
	list, err := src.Schedules(ctx)
	require.NoError(t, err)
	require.Empty(t, list, "a fresh source must be empty")
	samples := sampleSchedules()
	for _, s := range samples {
		require.NoError(t, src.Add(ctx, s), "add %s", s.ID)
	}
	list, err = src.Schedules(ctx)
	require.NoError(t, err)
	got := byID(list)
	require.Len(t, got, len(samples), "schedules listed: %v", list)
	for _, want := range samples {
		requireSameSchedule(t, want, got[want.ID])
	}

	// Add with a known id replaces the schedule.
	changed := samples[1]
	changed.Paused = false
	changed.Interval = time.Hour
	require.NoError(t, src.Add(ctx, changed))
	list, err = src.Schedules(ctx)
	require.NoError(t, err)
	require.Len(t, list, len(samples), "re-adding an id must replace, not duplicate")
	requireSameSchedule(t, changed, byID(list)[changed.ID])

	for _, s := range samples {
		require.NoError(t, src.Delete(ctx, s.ID), "delete %s", s.ID)
	}
	list, err = src.Schedules(ctx)
	require.NoError(t, err)
	require.Empty(t, list, "every schedule was deleted")
	err = src.Delete(ctx, "conf-none")
	require.True(t, errors.Is(err, sdk.ErrScheduleNotFound), "delete of an unknown id: %v", err)
}

func scheduleOneShot(t *testing.T, src sdk.ScheduleSource, ctx context.Context) {
	samples := sampleSchedules()
	for _, s := range samples {
		require.NoError(t, src.Add(ctx, s))
	}
	hooks, ok := src.(sdk.ScheduleHooks)
	if !ok {
		t.Skip("the source has no send hooks")
	}
	for _, s := range samples {
		require.NoError(t, hooks.PreSend(ctx, s))
		require.NoError(t, hooks.PostSend(ctx, s))
	}
	list, err := src.Schedules(ctx)
	require.NoError(t, err)
	got := byID(list)
	require.NotContains(t, got, "conf-at", "a one-shot schedule is deleted once it was sent")
	require.Contains(t, got, "conf-cron", "a cron schedule stays after a send")
	require.Contains(t, got, "conf-interval", "an interval schedule stays after a send")
}

func scheduleLastFired(t *testing.T, src sdk.ScheduleSource, ctx context.Context) {
	st, ok := src.(sdk.ScheduleState)
	require.True(t, ok, "a source claiming %q implements sdk.ScheduleState", sdk.CapScheduleState)
	got, err := st.LastFired(ctx, []string{"conf-a", "conf-b"})
	require.NoError(t, err)
	require.Empty(t, got, "nothing fired yet")
	t1 := time.Date(2030, 1, 1, 0, 0, 10, 0, time.UTC)
	require.NoError(t, st.MarkFired(ctx, "conf-a", t1))
	require.NoError(t, st.MarkFired(ctx, "conf-a", t1.Add(-time.Second)), "an earlier slot")
	got, err = st.LastFired(ctx, []string{"conf-a", "conf-b"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.True(t, got["conf-a"].Equal(t1), "an earlier slot must not replace a later one: %s", got["conf-a"])
	require.NoError(t, st.MarkFired(ctx, "conf-a", t1.Add(time.Second)))
	got, err = st.LastFired(ctx, []string{"conf-a"})
	require.NoError(t, err)
	require.True(t, got["conf-a"].Equal(t1.Add(time.Second)))
}

func scheduleLease(t *testing.T, src sdk.ScheduleSource, ctx context.Context) {
	st, ok := src.(sdk.ScheduleState)
	require.True(t, ok, "a source claiming %q implements sdk.ScheduleState", sdk.CapScheduleState)
	const ttl = 1500 * time.Millisecond
	held, err := st.AcquireLease(ctx, "conf", "a", ttl)
	require.NoError(t, err)
	require.True(t, held, "a free lease is taken")
	held, err = st.AcquireLease(ctx, "conf", "b", ttl)
	require.NoError(t, err)
	require.False(t, held, "a held lease is not given to another holder")
	held, err = st.AcquireLease(ctx, "conf", "a", ttl)
	require.NoError(t, err)
	require.True(t, held, "the holder renews its lease")
	require.NoError(t, st.ReleaseLease(ctx, "conf", "b"), "releasing a lease one does not hold does nothing")
	held, err = st.AcquireLease(ctx, "conf", "b", ttl)
	require.NoError(t, err)
	require.False(t, held, "a lease released by a non-holder stays with its holder")
	require.NoError(t, st.ReleaseLease(ctx, "conf", "a"))
	held, err = st.AcquireLease(ctx, "conf", "b", ttl)
	require.NoError(t, err)
	require.True(t, held, "a released lease is free")
	// Expiry: wait for it, bounded by the ttl the suite chose.
	require.Eventually(t, func() bool {
		held, err := st.AcquireLease(ctx, "conf", "c", ttl)
		return err == nil && held
	}, 3*ttl, 100*time.Millisecond, "a lease not renewed within its ttl expires")
}
