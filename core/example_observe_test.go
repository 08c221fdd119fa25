package core_test

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskiq-go/taskiq/core"
)

// Metrics go to a Prometheus registerer (serve it with promhttp), spans to
// an OpenTelemetry tracer provider (here an in-memory recorder; in
// production an OTLP exporter). A task logs through its Context's logger,
// whose lines carry task_id, task_name, queue, attempt, trace_id and
// span_id.
func Example_observability() {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	spans := tracetest.NewSpanRecorder()
	app := newExampleApp(core.WithMetrics(reg), core.WithTracing(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))))
	defer app.Close(ctx)

	greet := core.MustTask[string](app, "greet", func(ctx context.Context, name string) (string, error) {
		core.ContextFrom(ctx).Logger().Debug("greeting", "name", name)
		return "hello " + name, nil
	})
	stop := runExampleWorker(app)
	task, err := greet.Kiq(ctx, "ada")
	if err != nil {
		panic(err)
	}
	if _, err := task.WaitResult(ctx, 5*time.Second); err != nil {
		panic(err)
	}
	stop() // the run's span ends and its counters move once it is settled

	// The kick's span and the run's span end on different goroutines, in
	// either order: print them producer first.
	ended := spans.Ended()
	sort.Slice(ended, func(i, j int) bool { return ended[i].SpanKind() < ended[j].SpanKind() })
	for _, s := range ended {
		fmt.Println(s.Name(), s.SpanKind())
	}
	fams, _ := reg.Gather()
	for _, f := range fams {
		if f.GetName() == "taskiq_tasks_succeeded_total" {
			fmt.Println(f.GetName(), f.Metric[0].Counter.GetValue())
		}
	}
	// Output:
	// send default producer
	// process default consumer
	// taskiq_tasks_succeeded_total 1
}
