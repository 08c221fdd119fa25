package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

// recvMessages takes n messages off the default queue.
func recvMessages(t *testing.T, b sdk.Broker, n int) []*wire.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	defer st.Close()
	var out []*wire.Message
	for len(out) < n {
		ds, err := st.Recv(ctx, n-len(out))
		require.NoError(t, err)
		for _, d := range ds {
			m, err := wire.DecodeMessage(d.Body)
			require.NoError(t, err)
			out = append(out, m)
			require.NoError(t, st.Settle(ctx, []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleAck}}))
		}
	}
	return out
}

// The scheduler fires from every place: WithSchedules, a task's schedule
// label and a schedule source; each fire's id is sched:<id>:<slot> and it
// carries schedule_id and scheduled_time.
func TestRunSchedulerFiresEveryPlace(t *testing.T) {
	src := inmemory.NewScheduleSource(time.Now)
	require.NoError(t, src.Add(context.Background(), core.Schedule{ID: "from-source", TaskName: "job", Interval: time.Second}))
	b := setup(t,
		core.WithSchedules(core.Schedule{ID: "from-config", TaskName: "job", Interval: time.Second,
			Args: []json.RawMessage{json.RawMessage(`7`)}, Labels: map[string]any{"x": "y"}}),
		core.WithScheduleSource("mem", src, inmemory.ScheduleCapabilities...))
	core.MustTask[int](b.app, "job", func(n int) (int, error) { return n, nil })
	core.MustTask[int](b.app, "labelled", func() (int, error) { return 0, nil },
		core.WithLabels(map[string]any{"schedule": []any{map[string]any{"interval": 1, "schedule_id": "from-label"}}}))

	stats := &core.SchedulerStats{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.app.RunScheduler(ctx, core.SchedulerOptions{Stats: stats}) }()
	msgs := recvMessages(t, b.broker, 3)
	// A fire is counted once its kick returned, which can be just after the
	// broker got the message: cancelling before that would fail the kick.
	require.Eventually(t, func() bool { return stats.Fires.Load() >= 3 }, 10*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	seen := map[string]*wire.Message{}
	for _, m := range msgs {
		id, _ := m.LabelString(core.LabelScheduleID)
		seen[id] = m
		when, _ := m.LabelString(core.LabelScheduledTime)
		slot, err := time.Parse(time.RFC3339, when)
		require.NoError(t, err)
		require.Equal(t, "sched:"+id+":"+strconv.FormatInt(slot.Unix(), 10), m.TaskID)
	}
	require.Contains(t, seen, "from-config")
	require.Contains(t, seen, "from-source")
	require.Contains(t, seen, "from-label")
	require.Equal(t, "labelled", seen["from-label"].TaskName)
	require.JSONEq(t, "7", string(seen["from-config"].Args[0]))
	x, _ := seen["from-config"].LabelString("x")
	require.Equal(t, "y", x)
	_, hasSchedule := seen["from-label"].Labels["schedule"]
	require.False(t, hasSchedule, "a fire does not carry the task's schedule label")
}

func TestScheduleManagement(t *testing.T) {
	src := inmemory.NewScheduleSource(time.Now)
	b := setup(t,
		core.WithSchedules(core.Schedule{ID: "static", TaskName: "job", Cron: "0 3 * * *"}),
		core.WithScheduleSource("mem", src, inmemory.ScheduleCapabilities...))
	ctx := context.Background()
	require.NoError(t, b.app.AddSchedule(ctx, "", core.Schedule{ID: "dyn", TaskName: "job", Cron: "*/5 * * * *"}))
	err := b.app.AddSchedule(ctx, "", core.Schedule{ID: "bad", TaskName: "job", Cron: "nope"})
	require.Error(t, err)

	list, err := b.app.Schedules(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "config", list[0].Origin)
	require.Equal(t, "source:mem", list[1].Origin)

	require.NoError(t, b.app.SetSchedulePaused(ctx, "dyn", true))
	got, _ := src.Schedules(ctx)
	require.True(t, got[0].Paused)
	require.NoError(t, b.app.SetSchedulePaused(ctx, "dyn", false))
	err = b.app.SetSchedulePaused(ctx, "static", true)
	require.ErrorContains(t, err, "taskiq.hcl")

	id, err := b.app.TriggerSchedule(ctx, "static")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(id, "sched:static:manual:"), id)
	msgs := recvMessages(t, b.broker, 1)
	require.Equal(t, id, msgs[0].TaskID)

	require.NoError(t, b.app.DeleteSchedule(ctx, "dyn"))
	_, err = b.app.TriggerSchedule(ctx, "dyn")
	require.True(t, errors.Is(err, core.ErrUnknownSchedule), "%v", err)

	next, err := core.NextFireTimes(list[0].Schedule, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 2)
	require.NoError(t, err)
	require.Equal(t, []time.Time{time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)}, next)
}

func TestWithSchedulesRefusesAnInvalidSchedule(t *testing.T) {
	br := inmemory.NewBroker(inmemory.BrokerOptions{})
	defer br.Close(context.Background())
	_, err := core.New(core.WithBroker("default", br),
		core.WithSchedules(core.Schedule{ID: "x", TaskName: "t", Interval: time.Second, Catchup: "sometimes"}))
	require.ErrorContains(t, err, "catchup")
}

// Two schedulers on one broker and one schedule source: with a broker that
// deduplicates, both fire and the broker keeps one message per slot;
// without, they elect a leader through the source's lease and only it
// fires. Either way every slot is one message.
func TestSchedulerReplicas(t *testing.T) {
	for _, c := range []struct {
		name string
		caps []string
	}{
		{"dedup", inmemory.BrokerCapabilities},
		{"lease", []string{sdk.CapDelay}},
	} {
		t.Run(c.name, func(t *testing.T) {
			broker := inmemory.NewBroker(inmemory.BrokerOptions{})
			t.Cleanup(func() { _ = broker.Close(context.Background()) })
			src := inmemory.NewScheduleSource(time.Now)
			require.NoError(t, src.Add(context.Background(), core.Schedule{ID: "tick", TaskName: "job", Interval: time.Second, Catchup: "all"}))
			ctx, cancel := context.WithCancel(context.Background())
			var done []chan error
			stats := make([]*core.SchedulerStats, 2)
			for i := range stats {
				app, err := core.New(core.WithBroker("default", broker, c.caps...),
					core.WithScheduleSource("mem", src, inmemory.ScheduleCapabilities...),
					core.WithLogger(hclog.NewNullLogger()))
				require.NoError(t, err)
				t.Cleanup(func() { _ = app.Close(context.Background()) })
				stats[i] = &core.SchedulerStats{}
				d := make(chan error, 1)
				done = append(done, d)
				go func() { d <- app.RunScheduler(ctx, core.SchedulerOptions{Stats: stats[i], Holder: strconv.Itoa(i)}) }()
			}
			got := map[string]int{}
			for _, m := range recvMessages(t, broker, 3) {
				got[m.TaskID]++
			}
			cancel()
			for _, d := range done {
				require.NoError(t, <-d)
			}
			// Whatever was kicked before both stopped is in the queue now.
			if n := broker.Len(""); n > 0 {
				for _, m := range recvMessages(t, broker, n) {
					got[m.TaskID]++
				}
			}
			for id, n := range got {
				require.Equal(t, 1, n, "%s: %v", id, got)
			}
			fires := stats[0].Fires.Load() + stats[1].Fires.Load()
			if c.name == "lease" {
				require.True(t, stats[0].Fires.Load() == 0 || stats[1].Fires.Load() == 0, "both replicas fired without dedup")
				require.Equal(t, int64(len(got)), fires)
			} else {
				require.Greater(t, fires, int64(len(got)), "with dedup both replicas fire every slot")
			}
		})
	}
}

// A schedule block the engine refuses is a config error at its attribute,
// before any plugin starts.
func TestLoadReportsABadScheduleAtItsAttribute(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/taskiq.hcl"
	src := "broker \"default\" {\n  plugin = \"./no-such-plugin\"\n}\nschedule \"x\" {\n  task = \"t\"\n  cron = \"0 25 * * *\"\n}\n"
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	_, err := core.Load(context.Background(), path, core.WithLogger(hclog.NewNullLogger()))
	require.ErrorContains(t, err, "taskiq.hcl:6:10: Invalid schedule")
	require.ErrorContains(t, err, `schedule "x": cron:`)
}

// A one-shot schedule of a source fires once, then the source's post_send
// deletes it (taskiq's behaviour).
func TestOneShotFromASourceIsDeletedAfterItsFire(t *testing.T) {
	src := inmemory.NewScheduleSource(time.Now)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	require.NoError(t, src.Add(context.Background(), core.Schedule{ID: "once", TaskName: "job", Time: at}))
	b := setup(t, core.WithScheduleSource("mem", src, inmemory.ScheduleCapabilities...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.app.RunScheduler(ctx, core.SchedulerOptions{}) }()
	msgs := recvMessages(t, b.broker, 1)
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, "sched:once:"+strconv.FormatInt(at.Unix(), 10), msgs[0].TaskID)
	left, err := src.Schedules(context.Background())
	require.NoError(t, err)
	require.Empty(t, left, "post_send deletes the one-shot schedule")
}
