package core_test

import (
	"context"
	"fmt"
	"time"

	"github.com/taskiq-go/taskiq/core"
)

// A message whose task no worker has is dead-lettered at once, and its
// waiter learns why instead of waiting out its timeout.
func ExampleDeadLetterError() {
	ctx := context.Background()
	app := newExampleApp()
	defer app.Close(ctx)
	defer runExampleWorker(app)()

	task, err := app.KickByName(ctx, core.RawKick{TaskName: "example:nope"})
	if err != nil {
		panic(err)
	}
	res, err := task.WaitResult(ctx, time.Minute)
	if err != nil {
		panic(err)
	}
	_, err = res.Value()
	fmt.Println(res.Error.ExcType)
	fmt.Println(err)
	// Output:
	// DeadLetterError
	// DeadLetterError: message moved to the dead-letter store without running: unknown task name "example:nope": no task of that name is registered on this worker
}
