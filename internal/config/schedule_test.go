package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

func TestScheduleBlocks(t *testing.T) {
	t.Parallel()
	f := mustParse(t, `
schedule_source "redis" {
  plugin = "taskiq-redis"
}
schedule "nightly" {
  task           = "reports:nightly"
  args           = [1, "two", { three = 3 }]
  kwargs         = { dry = true }
  labels         = { queue_name = "low" }
  broker         = "default"
  cron           = "30 2 * * *"
  timezone       = "Europe/Berlin"
  jitter         = "30s"
  catchup        = "all"
  catchup_window = "6h"
  overlap        = "skip"
  paused         = true
  start_at       = "2026-01-01T00:00:00+01:00"
  end_at         = "2027-01-01T00:00:00Z"
}
schedule "tick" {
  task     = "ping"
  interval = "10s"
  phase    = "3s"
}
schedule "once" {
  task = "hello"
  at   = "2026-06-01T12:00:00+02:00"
}
`, nil)
	require.Len(t, f.ScheduleSources, 1)
	require.Equal(t, sdk.KindScheduleSource, f.ScheduleSources[0].Kind)
	require.Len(t, f.Schedules, 3)
	n := f.Schedules[0]
	require.Equal(t, "nightly", n.ID)
	require.Equal(t, "reports:nightly", n.TaskName)
	require.Len(t, n.Args, 3)
	require.JSONEq(t, `{"three":3}`, string(n.Args[2]))
	require.JSONEq(t, `true`, string(n.Kwargs["dry"]))
	require.Equal(t, map[string]any{"queue_name": "low"}, n.Labels)
	require.Equal(t, "30 2 * * *", n.Cron)
	require.Equal(t, "Europe/Berlin", n.Timezone)
	require.Equal(t, 30*time.Second, n.Jitter)
	require.Equal(t, "all", n.Catchup)
	require.Equal(t, 6*time.Hour, n.CatchupWindow)
	require.Equal(t, "skip", n.Overlap)
	require.True(t, n.Paused)
	require.True(t, n.StartAt.Equal(time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC)))
	require.Equal(t, 10*time.Second, f.Schedules[1].Interval)
	require.Equal(t, 3*time.Second, f.Schedules[1].Phase)
	require.True(t, f.Schedules[2].Time.Equal(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)))
	cron := n.Range("cron")
	require.Equal(t, [2]int{11, 20}, [2]int{cron.Start.Line, cron.Start.Column}, "Range points at the attribute's value")
	require.Equal(t, n.DeclRange, n.Range("interval"), "an attribute not written: the block header")
}

func TestScheduleDiagnostics(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, src, want string }{
		{"two kinds", "schedule \"a\" {\n  task = \"t\"\n  cron = \"* * * * *\"\n  interval = \"1s\"\n}\n",
			`taskiq.hcl:1:1: Invalid schedule; Schedule "a" needs exactly one of cron ("*/5 * * * *", or 6 fields with seconds), interval ("30s") and at (an RFC 3339 time).`},
		{"no task", "schedule \"a\" {\n  interval = \"1s\"\n}\n",
			`taskiq.hcl:1:14: Missing required argument; The argument "task" is required, but no definition was found.`},
		{"bad catchup", "schedule \"a\" {\n  task = \"t\"\n  interval = \"1s\"\n  catchup = \"lates\"\n}\n",
			`taskiq.hcl:4:13: Invalid catchup; "lates" is not one of skip, latest, all. Did you mean "latest"?`},
		{"bad time", "schedule \"a\" {\n  task = \"t\"\n  at = \"tomorrow\"\n}\n",
			`taskiq.hcl:3:8: Invalid at; "tomorrow" is not an RFC 3339 time; write it with its offset, e.g. "2026-01-31T09:00:00+01:00" or "2026-01-31T08:00:00Z".`},
		{"bad interval", "schedule \"a\" {\n  task = \"t\"\n  interval = \"soon\"\n}\n",
			`taskiq.hcl:3:14: Invalid duration; interval: "soon" is not a duration; write a number with a unit, such as "30s", "5m" or "1h30m".`},
		{"duplicate", "schedule \"a\" {\n  task = \"t\"\n  interval = \"1s\"\n}\nschedule \"a\" {\n  task = \"t\"\n  interval = \"1s\"\n}\n",
			`taskiq.hcl:5:1: Duplicate schedule block; A schedule "a" is already defined at taskiq.hcl:1:1; schedule ids must be unique.`},
		{"typo", "schedule \"a\" {\n  task = \"t\"\n  intervall = \"1s\"\n}\n",
			`taskiq.hcl:3:3: Unsupported argument; An argument named "intervall" is not expected here. Did you mean "interval"?`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, diags := parse([]byte(c.src), "taskiq.hcl", fakeEnv(nil))
			require.True(t, diags.HasErrors())
			require.Contains(t, FormatDiagnostics(diags), c.want)
		})
	}
}
