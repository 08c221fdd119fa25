package telemetry

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// discardExporter drops the spans the batching processor hands it.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkRecorderTask is the host's telemetry cost of one task: its kick
// (send span, kick counter) and its run (process span, counters,
// histograms), with the configuration of taskiq bench --observe=all
// (every span sampled, batching processor, manual metric reader).
func BenchmarkRecorderTask(b *testing.B) {
	for _, what := range []string{"metrics", "tracing", "all"} {
		b.Run(what, func(b *testing.B) {
			o := Options{}
			if what != "tracing" {
				o.Registerer = prometheus.NewRegistry()
			}
			if what != "metrics" {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				defer func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) }()
				o.TracerProvider, o.MeterProvider = tp, mp
			}
			r, err := New(o)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					msg := &wire.Message{TaskID: strconv.Itoa(i), TaskName: "bench.noop", Labels: map[string]any{}}
					r.StampKick(msg)
					_, snd := r.StartSend(ctx, msg)
					r.Kicked(msg)
					snd.End(nil)
					_, run := r.StartRun(ctx, msg, 1)
					run.Started()
					run.Executed(time.Microsecond, nil)
					run.Saved(time.Microsecond)
					run.End(Succeeded)
				}
			})
		})
	}
}
