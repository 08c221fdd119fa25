package core_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskiq-go/taskiq/core"
)

// A task cancelled before a worker takes it never runs; its result is a
// TaskCancelledError. Cancelling it again says it already finished.
func ExampleAsyncTask_Cancel() {
	ctx := context.Background()
	app := newExampleApp()
	defer app.Close(ctx)
	report := core.MustTask[string](app, "reports.build", func(tenant string) (string, error) { return "report of " + tenant, nil })

	task, err := report.Kiq(ctx, "acme")
	if err != nil {
		panic(err)
	}
	if err := task.Cancel(ctx); err != nil {
		panic(err)
	}
	defer runExampleWorker(app)()
	res, err := task.WaitResult(ctx, 5*time.Second)
	if err != nil {
		panic(err)
	}
	_, err = res.Value()
	fmt.Println(core.IsCancelled(err), res.Error.ExcType)
	fmt.Println(errors.Is(task.Cancel(ctx), core.ErrTaskFinished))
	// Output:
	// true TaskCancelledError
	// true
}

// The broker's inspector lists queues and messages by state, with filters
// applied in the broker.
func ExampleApp_Inspector() {
	ctx := context.Background()
	app := newExampleApp()
	defer app.Close(ctx)
	charge := core.MustTask[int](app, "billing.charge", func(cents int) (int, error) { return cents, nil })
	for _, tenant := range []string{"acme", "globex", "acme"} {
		if _, err := charge.Kicker().WithLabels(map[string]any{"tenant": tenant}).Kiq(ctx, 100); err != nil {
			panic(err)
		}
	}
	in, err := app.Inspector("")
	if err != nil {
		panic(err)
	}
	qs, _ := in.Queues(ctx)
	fmt.Println(qs[0].Name, qs[0].Queued)
	page, _ := in.Messages(ctx, core.MessageQuery{State: core.StateQueued,
		Filter: core.MessageFilter{Labels: map[string]string{"tenant": "acme"}}})
	fmt.Println(len(page.Messages), page.Messages[0].TaskName)
	// Output:
	// taskiq 3
	// 2 billing.charge
}
