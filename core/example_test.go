package core_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

// newExampleApp builds an App on the in-memory broker and result backend,
// in process. With taskiq.hcl, core.Load builds the same App on plugin
// processes.
func newExampleApp(opts ...core.Option) *core.App {
	app, err := core.New(append([]core.Option{
		core.WithBroker("default", inmemory.NewBroker(inmemory.BrokerOptions{}), inmemory.BrokerCapabilities...),
		core.WithResultBackend(inmemory.NewResultBackend(inmemory.ResultOptions{}), inmemory.ResultCapabilities...),
	}, opts...)...)
	if err != nil {
		panic(err)
	}
	return app
}

// runExampleWorker runs a worker until the returned stop is called.
func runExampleWorker(app *core.App) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan struct{})
	go func() {
		_ = app.RunWorker(ctx, core.WorkerOptions{Ready: func() { close(ready) }})
		close(done)
	}()
	<-ready
	return func() { cancel(); <-done }
}

func Example() {
	ctx := context.Background()
	app := newExampleApp()
	defer app.Close(ctx)

	add := core.MustTask[int](app, "math.add", func(a, b int) (int, error) { return a + b, nil })
	defer runExampleWorker(app)()

	task, err := add.Kiq(ctx, 1, 2)
	if err != nil {
		panic(err)
	}
	res, err := task.WaitResult(ctx, 5*time.Second)
	if err != nil {
		panic(err)
	}
	sum, err := res.Value()
	fmt.Println(sum, err)
	// Output: 3 <nil>
}

func ExampleKicker() {
	ctx := context.Background()
	app := newExampleApp()
	defer app.Close(ctx)

	greet := core.MustTask[string](app, "greet", func(ctx context.Context, name string) (string, error) {
		lang, _ := core.ContextFrom(ctx).Message.LabelString("lang")
		if lang == "fr" {
			return "bonjour " + name, nil
		}
		return "hello " + name, nil
	}, core.WithLabels(map[string]any{"lang": "en"}))
	defer runExampleWorker(app)()

	task, _ := greet.Kicker().WithTaskID("greeting-1").WithLabels(map[string]any{"lang": "fr"}).Kiq(ctx, "ada")
	res, _ := task.WaitResult(ctx, 5*time.Second)
	fmt.Println(task.TaskID, res.ReturnValue)
	// Output: greeting-1 bonjour ada
}

func ExampleResult_Value() {
	ctx := context.Background()
	app := newExampleApp()
	defer app.Close(ctx)

	div := core.MustTask[float64](app, "math.div", func(a, b float64) (float64, error) {
		if b == 0 {
			return 0, errors.New("division by zero")
		}
		return a / b, nil
	})
	defer runExampleWorker(app)()

	task, _ := div.Kiq(ctx, 1, 0)
	res, _ := task.WaitResult(ctx, 5*time.Second)
	_, err := res.Value()
	fmt.Println(res.IsErr, res.Error.ExcType, err)
	// Output: true Error Error: division by zero
}

// A task chooses the exception type its failure is stored under: a Python
// client of the result raises builtins.ValueError here.
func ExampleNamedError() {
	ctx := context.Background()
	app := newExampleApp()
	defer app.Close(ctx)

	parse := core.MustTask[int](app, "parse.age", func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, core.NamedError("builtins.ValueError", fmt.Errorf("age %q: %w", s, err))
		}
		return n, nil
	})
	defer runExampleWorker(app)()

	task, _ := parse.Kiq(ctx, "ten")
	res, _ := task.WaitResult(ctx, 5*time.Second)
	fmt.Println(res.Error.ExcModule, res.Error.ExcType, res.Error.ExcCause.ExcType)
	// Output: builtins ValueError NumError
}

func ExampleContext_Requeue() {
	ctx := context.Background()
	app := newExampleApp()
	defer app.Close(ctx)

	flaky := core.MustTask[int64](app, "flaky", func(ctx context.Context) (int64, error) {
		tc := core.ContextFrom(ctx)
		if n, _ := tc.Message.LabelInt(core.LabelRequeue); n < 2 {
			return 0, tc.Requeue() // try again later, without storing a result
		}
		n, _ := tc.Message.LabelInt(core.LabelRequeue)
		return n, nil
	})
	defer runExampleWorker(app)()

	task, _ := flaky.Kiq(ctx)
	res, _ := task.WaitResult(ctx, 5*time.Second)
	fmt.Println("requeued", res.ReturnValue, "times")
	// Output: requeued 2 times
}

type db struct{ name string }

func ExampleProvide() {
	ctx := context.Background()
	app := newExampleApp()
	defer app.Close(ctx)

	app.OnEvent(core.EventWorkerStartup, func(ctx context.Context, s *core.State) error {
		s.Set("dsn", "postgres://example")
		return nil
	})
	core.Provide(app, func(ctx context.Context) (*db, func(), error) {
		dsn, _ := core.StateValue[string](core.ContextFrom(ctx).State(), "dsn")
		conn := &db{name: dsn}
		return conn, func() { fmt.Println("closed", conn.name) }, nil
	})
	query := core.MustTask[string](app, "query", func(ctx context.Context) (string, error) {
		conn, err := core.Use[*db](ctx)
		if err != nil {
			return "", err
		}
		return "queried " + conn.name, nil
	})
	stop := runExampleWorker(app)
	task, _ := query.Kiq(ctx)
	res, _ := task.WaitResult(ctx, 5*time.Second)
	stop()
	fmt.Println(res.ReturnValue)
	// Output:
	// closed postgres://example
	// queried postgres://example
}

// timing is a middleware with two hooks; the host calls only those.
type timing struct{}

func (timing) PreSend(_ context.Context, m *core.Message) error {
	m.SetLabel("sent_by", "example")
	return nil
}

func (timing) PostExecute(_ context.Context, m *core.Message, r *core.TaskResult) error {
	fmt.Println("ran", m.TaskName, "sent by", r.Labels["sent_by"])
	return nil
}

func ExampleWithMiddleware() {
	ctx := context.Background()
	app := newExampleApp(core.WithMiddleware(timing{}))
	defer app.Close(ctx)

	ping := core.MustTask[string](app, "ping", func() (string, error) { return "pong", nil })
	defer runExampleWorker(app)()

	task, _ := ping.Kiq(ctx)
	res, _ := task.WaitResult(ctx, 5*time.Second)
	fmt.Println(res.ReturnValue)
	// Output:
	// ran ping sent by example
	// pong
}
