// Command scheduled-tasks is a task module whose tasks declare their own
// schedules, in the "schedule" label of taskiq's LabelScheduleSource (a
// list of {cron, cron_offset, interval, time, args, kwargs, labels,
// schedule_id}). `taskiq scheduler` given the module fires them; `taskiq
// worker` runs them.
//
//	go build -o bin/scheduled-tasks ./examples/scheduled-tasks
//	taskiq schedule list --config examples/scheduled-tasks/taskiq.hcl bin/scheduled-tasks
//	taskiq scheduler --config examples/scheduled-tasks/taskiq.hcl bin/scheduled-tasks &
//	taskiq worker --config examples/scheduled-tasks/taskiq.hcl bin/scheduled-tasks
//
// See docs/scheduler.md.
package main

import (
	"context"

	"github.com/taskiq-go/taskiq/core"
)

var app = core.NewModule("scheduled-tasks")

var (
	// Every 10 seconds, with its arguments.
	_ = core.MustTask[int](app, "scheduled:add", add, core.WithParamNames("a", "b"),
		core.WithLabels(map[string]any{"schedule": []any{
			map[string]any{"interval": 10, "args": []any{1, 2}, "schedule_id": "add-every-10s"},
		}}))
	// At 07:30 on weekdays, Berlin time.
	_ = core.MustTask[string](app, "scheduled:report", report,
		core.WithLabels(map[string]any{"schedule": []any{
			map[string]any{"cron": "30 7 * * 1-5", "cron_offset": "Europe/Berlin", "schedule_id": "weekday-report"},
		}}))
)

func add(a, b int) (int, error) { return a + b, nil }

// report shows which slot it runs for.
func report(ctx context.Context) (string, error) {
	slot, _ := core.ContextFrom(ctx).Message.LabelString(core.LabelScheduledTime)
	return "report for " + slot, nil
}

func main() { core.ServeModule(app, "0.1.0") }
