package taskiqredis

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/pickle"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/conformance"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

var update = flag.Bool("update", false, "rewrite the go-*.json golden files")

func (e *testEnv) schedules(t testing.TB, kv map[string]any) *scheduleSource {
	t.Helper()
	s, err := newScheduleSource(context.Background(), e.config(t, kv))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "schedule", name))
	require.NoError(t, err)
	return b
}

// TestScheduleLayoutGolden reads schedules a Python scheduler wrote in
// taskiq-redis's layout and writes schedules the same way.
func TestScheduleLayoutGolden(t *testing.T) {
	runSuite(t, map[string]func(t *testing.T, e *testEnv){
		"ReadPython": func(t *testing.T, e *testEnv) {
			prefix := e.queue("schedule")
			ctx := ctxT(t)
			for key, file := range map[string]string{
				prefix + ":data:daily-report": "python-cron.json",
				prefix + ":data:ping":         "python-interval.json",
				prefix + ":data:remind-alice": "python-time.json",
			} {
				require.NoError(t, e.rdb.Set(ctx, key, fixture(t, file), 0).Err())
			}
			require.NoError(t, e.rdb.RPush(ctx, prefix+":cron", "daily-report").Err())
			require.NoError(t, e.rdb.RPush(ctx, prefix+":interval", "ping").Err())
			require.NoError(t, e.rdb.RPush(ctx, prefix+":time:2026-12-24T18:00", "remind-alice").Err())
			// An id whose data is gone is skipped, as taskiq-redis does.
			require.NoError(t, e.rdb.RPush(ctx, prefix+":cron", "vanished").Err())

			src := e.schedules(t, map[string]any{"prefix": prefix})
			list, err := src.Schedules(ctx)
			require.NoError(t, err)
			got := map[string]sdk.Schedule{}
			for _, s := range list {
				got[s.ID] = s
			}
			require.Len(t, got, 3, "%v", list)
			cron := got["daily-report"]
			require.Equal(t, "reports:daily", cron.TaskName)
			require.Equal(t, "0 3 * * *", cron.Cron)
			require.Equal(t, "Europe/Berlin", cron.CronOffset)
			require.Equal(t, map[string]any{"queue_name": "low", "retries": int64(3)}, cron.Labels)
			require.Len(t, cron.Args, 2)
			require.JSONEq(t, `"x"`, string(cron.Args[1]))
			require.JSONEq(t, `true`, string(cron.Kwargs["dry"]))
			require.Equal(t, 30*time.Second, got["ping"].Interval)
			require.True(t, got["remind-alice"].Time.Equal(time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC)))

			// A one-shot schedule goes once it was sent, from its time list too.
			require.NoError(t, src.PostSend(ctx, got["remind-alice"]))
			n, err := e.rdb.Exists(ctx, prefix+":data:remind-alice", prefix+":time:2026-12-24T18:00").Result()
			require.NoError(t, err)
			require.Zero(t, n)
		},
		"WriteLikePython": func(t *testing.T, e *testEnv) {
			prefix := e.queue("schedule")
			ctx := ctxT(t)
			src := e.schedules(t, map[string]any{"prefix": prefix})
			cases := []struct {
				file, list string
				s          sdk.Schedule
			}{
				{"go-cron.json", prefix + ":cron", sdk.Schedule{ID: "daily-report", TaskName: "reports:daily", Cron: "0 3 * * *",
					CronOffset: "Europe/Berlin", Args: []json.RawMessage{json.RawMessage(`1`)},
					Labels: map[string]any{"queue_name": "low"}, Catchup: "all", CatchupWindow: 2 * time.Hour}},
				{"go-interval.json", prefix + ":interval", sdk.Schedule{ID: "ping", TaskName: "app.tasks:ping",
					Interval: 30 * time.Second, Phase: 5 * time.Second, Paused: true}},
				{"go-time.json", prefix + ":time:2026-12-24T18:00", sdk.Schedule{ID: "remind-alice", TaskName: "app.tasks:remind",
					Time: time.Date(2026, 12, 24, 18, 0, 30, 0, time.UTC), Args: []json.RawMessage{json.RawMessage(`"alice"`)}}},
			}
			for _, c := range cases {
				require.NoError(t, src.Add(ctx, c.s))
				require.NoError(t, src.Add(ctx, c.s), "adding again must not list the id twice")
				got, err := e.rdb.Get(ctx, prefix+":data:"+c.s.ID).Bytes()
				require.NoError(t, err)
				path := filepath.Join("testdata", "schedule", c.file)
				if *update {
					require.NoError(t, os.WriteFile(path, got, 0o644))
				}
				require.Equal(t, string(fixture(t, c.file)), string(got), "the value of %s", c.s.ID)
				// Every field of taskiq's ScheduledTask is there for Python's model.
				var dict map[string]json.RawMessage
				require.NoError(t, json.Unmarshal(got, &dict))
				for _, k := range []string{"task_name", "labels", "args", "kwargs", "task_id", "schedule_id", "cron", "cron_offset", "time", "interval"} {
					require.Contains(t, dict, k)
				}
				ids, err := e.rdb.LRange(ctx, c.list, 0, -1).Result()
				require.NoError(t, err)
				require.Equal(t, []string{c.s.ID}, ids, "list %s", c.list)
			}
			// A schedule that changes kind moves to its new list.
			moved := cases[1].s
			moved.Interval, moved.Cron = 0, "*/5 * * * *"
			require.NoError(t, src.Add(ctx, moved))
			ids, err := e.rdb.LRange(ctx, prefix+":interval", 0, -1).Result()
			require.NoError(t, err)
			require.Empty(t, ids)
			ids, err = e.rdb.LRange(ctx, prefix+":cron", 0, -1).Result()
			require.NoError(t, err)
			require.Equal(t, []string{"daily-report", "ping"}, ids)
		},
	})
}

func TestScheduleSourceConformance(t *testing.T) {
	t.Parallel()
	conformance.TestScheduleSource(t, func(t *testing.T) sdk.ScheduleSource {
		cfg := conformanceConfig(t, map[string]any{
			"url":    conformanceRedis(t, true),
			"prefix": "conf-" + randomHex(6),
		})
		return sdktest.Launch(t, sdk.KindScheduleSource, cfg).ScheduleSource()
	}, scheduleCapabilities)
}

// Python's JSONSerializer cannot write a datetime by itself; with
// default=str it writes "2026-12-24 18:00:00+00:00", and isoformat writes a
// "T". Both read back, as do naive times (UTC, as taskiq-redis reads them).
func TestScheduleCodecReadsPythonTimes(t *testing.T) {
	for _, raw := range []string{"2026-12-24 18:00:00+00:00", "2026-12-24T19:00:00+01:00", "2026-12-24T18:00:00", "2026-12-24 18:00:00"} {
		s, err := jsonScheduleCodec{}.decode([]byte(`{"task_name": "t", "labels": {}, "args": [], "kwargs": {}, "schedule_id": "x", "cron": null, "cron_offset": null, "time": "` + raw + `", "interval": null}`))
		require.NoError(t, err, raw)
		require.True(t, s.Time.Equal(time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC)), "%s read as %s", raw, s.Time)
	}
	s, err := jsonScheduleCodec{}.decode([]byte(`{"task_name": "t", "labels": {}, "args": [], "kwargs": {}, "schedule_id": "x", "cron": "* * * * *", "cron_offset": 7200, "time": null, "interval": null}`))
	require.NoError(t, err)
	require.Equal(t, "+02:00", s.CronOffset, "a timedelta offset written as seconds")
}

// dedup = false drops the capability, and kicks with a window are no longer
// deduplicated.
func TestBrokerDedupOff(t *testing.T) {
	runSuite(t, map[string]func(t *testing.T, e *testEnv){
		"off": func(t *testing.T, e *testEnv) {
			q := e.queue("nodedup")
			b := e.broker(t, map[string]any{"queue": q, "dedup": false})
			require.NotContains(t, b.Capabilities(), sdk.CapDedup)
			m := sdk.Outgoing{TaskID: "same", Body: []byte(`{"task_id":"same","task_name":"t","labels":{},"args":[],"kwargs":{}}`), DedupWindow: time.Minute}
			kick(t, b, m)
			kick(t, b, m)
			n, err := e.rdb.XLen(ctxT(t), q).Result()
			require.NoError(t, err)
			require.EqualValues(t, 2, n)
		},
		"on": func(t *testing.T, e *testEnv) {
			q := e.queue("dedup")
			b := e.broker(t, map[string]any{"queue": q})
			require.Contains(t, b.Capabilities(), sdk.CapDedup)
			m := sdk.Outgoing{TaskID: "same", Body: []byte(`{"task_id":"same","task_name":"t","labels":{},"args":[],"kwargs":{}}`), DedupWindow: time.Minute}
			kick(t, b, m)
			kick(t, b, m)
			n, err := e.rdb.XLen(ctxT(t), q).Result()
			require.NoError(t, err)
			require.EqualValues(t, 1, n)
			ttl, err := e.rdb.PTTL(ctxT(t), q+":dedup:same").Result()
			require.NoError(t, err)
			require.Greater(t, ttl, 50*time.Second, "the marker lives for the window")
		},
	})
}

// serializer = "pickle": a schedule pickled as Python pickles the dict
// (pickle.FromJSON of the Python fixture gives CPython's bytes) is read,
// and what the plugin writes reads back the same.
func TestSchedulePickle(t *testing.T) {
	runSuite(t, map[string]func(t *testing.T, e *testEnv){
		"pickle": func(t *testing.T, e *testEnv) {
			prefix := e.queue("schedule")
			ctx := ctxT(t)
			py, err := pickle.FromJSON(fixture(t, "python-cron.json"))
			require.NoError(t, err)
			require.NoError(t, e.rdb.Set(ctx, prefix+":data:daily-report", py, 0).Err())
			require.NoError(t, e.rdb.RPush(ctx, prefix+":cron", "daily-report").Err())
			src := e.schedules(t, map[string]any{"prefix": prefix, "serializer": "pickle"})
			list, err := src.Schedules(ctx)
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.Equal(t, "0 3 * * *", list[0].Cron)
			require.Equal(t, "Europe/Berlin", list[0].CronOffset)

			s := sdk.Schedule{ID: "ping", TaskName: "app.tasks:ping", Interval: 30 * time.Second, Paused: true}
			require.NoError(t, src.Add(ctx, s))
			raw, err := e.rdb.Get(ctx, prefix+":data:ping").Bytes()
			require.NoError(t, err)
			asJSON, err := pickle.ToJSON(raw)
			require.NoError(t, err)
			require.Equal(t, string(mustJSON(t, s)), string(asJSON),
				"the pickle holds the dict the JSON codec writes")
		},
	})
}

func mustJSON(t *testing.T, s sdk.Schedule) []byte {
	t.Helper()
	b, err := jsonScheduleCodec{}.encode(s)
	require.NoError(t, err)
	return b
}
