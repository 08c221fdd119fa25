// Command quickstart loads taskiq.hcl (the in-memory plugin as a separate
// process), registers three tasks, runs a worker in process, kicks the tasks
// and prints their results. Run it with `make demo`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/taskiq-go/taskiq/core"
)

func main() {
	cfg := flag.String("config", "examples/quickstart/taskiq.hcl", "path to taskiq.hcl")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *cfg); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, cfg string) error {
	app, err := core.Load(ctx, cfg)
	if err != nil {
		return err
	}
	defer app.Close(context.Background())

	// 1. A task that returns a value.
	add := core.MustTask[int](app, "math.add", func(a, b int) (int, error) {
		return a + b, nil
	})
	// 2. A task that fails.
	divide := core.MustTask[float64](app, "math.divide", func(a, b float64) (float64, error) {
		if b == 0 {
			return 0, errors.New("division by zero")
		}
		return a / b, nil
	})
	// 3. A task that reads its Context.
	whoami := core.MustTask[string](app, "ctx.whoami", func(ctx context.Context) (string, error) {
		tc := core.ContextFrom(ctx)
		team, _ := tc.Message.LabelString("team")
		return fmt.Sprintf("task %s (%s) for team %s, attempt %d",
			tc.Message.TaskID, tc.Message.TaskName, team, tc.Delivery.Attempt), nil
	}, core.WithLabels(map[string]any{"team": "billing"}))

	// Run a worker in this process; the broker and results live in the plugin.
	workerCtx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan error, 1)
	go func() { workerDone <- app.RunWorker(workerCtx, app.WorkerDefaults()) }()
	defer func() { stopWorker(); <-workerDone }()

	sum, err := add.Kiq(ctx, 1, 2)
	if err != nil {
		return err
	}
	bad, err := divide.Kiq(ctx, 1.0, 0.0)
	if err != nil {
		return err
	}
	me, err := whoami.Kicker().WithLabels(map[string]any{"team": "search"}).Kiq(ctx)
	if err != nil {
		return err
	}

	r1, err := sum.WaitResult(ctx, 10*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("math.add(1, 2)       = %d (in %v)\n", r1.ReturnValue, r1.ExecutionTime.Round(time.Microsecond))

	r2, err := bad.WaitResult(ctx, 10*time.Second)
	if err != nil {
		return err
	}
	if _, err := r2.Value(); err != nil {
		fmt.Printf("math.divide(1, 0)    failed: %v\n", err)
	}

	r3, err := me.WaitResult(ctx, 10*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("ctx.whoami()         = %s\n", r3.ReturnValue)
	return nil
}
