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
