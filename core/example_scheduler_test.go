package core_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskiq-go/taskiq/core"
)

func ExampleApp_RunScheduler() {
	ctx := context.Background()
	// A one-shot slot a minute ago: the default catch-up ("latest" within
	// an hour) fires it as soon as the scheduler starts.
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	app := newExampleApp(core.WithSchedules(core.Schedule{
		ID: "hello", TaskName: "greet", Time: at, Args: []json.RawMessage{json.RawMessage(`"ada"`)},
	}))
	defer app.Close(ctx)
	core.MustTask[string](app, "greet", func(ctx context.Context, name string) (string, error) {
		slot, _ := core.ContextFrom(ctx).Message.LabelString(core.LabelScheduledTime)
		return fmt.Sprintf("hello %s (slot %v)", name, slot == at.UTC().Format(time.RFC3339)), nil
	})
	defer runExampleWorker(app)()

	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.RunScheduler(sctx, core.SchedulerOptions{}) }()
	// The fire's task id is derived from the schedule id and the slot.
	res, err := core.ResultOf[string](app, fmt.Sprintf("sched:hello:%d", at.Unix())).WaitResult(ctx, 5*time.Second)
	stop()
	<-done
	fmt.Println(res.ReturnValue, err)
	// Output: hello ada (slot true) <nil>
}

func ExampleNextFireTimes() {
	// 02:30 does not exist in Berlin on 29 March 2026 (clocks go from 02:00
	// to 03:00): that day's slot fires at the end of the gap.
	daily := core.Schedule{ID: "daily", TaskName: "report", Cron: "30 2 * * *", Timezone: "Europe/Berlin"}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	next, _ := core.NextFireTimes(daily, time.Date(2026, 3, 28, 12, 0, 0, 0, berlin), 2)
	for _, t := range next {
		fmt.Println(t.In(berlin).Format("Mon 02 Jan 15:04 MST"))
	}
	// Output:
	// Sun 29 Mar 03:00 CEST
	// Mon 30 Mar 02:30 CEST
}
