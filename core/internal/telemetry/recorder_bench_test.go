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

// BenchmarkRecorderTask is the host's telemetry cost of one task: its kick
// (send span, kick counter) and its run (process span, counters,
// histograms), with the configuration of taskiq bench --observe=all
// (every span sampled, batching processor, manual metric reader).
// cpu-ns/op is the CPU of the whole process per task; exported/op the
// spans the processor exported per task (2 when it dropped none: a full
// queue drops, as in taskiq bench).
func BenchmarkRecorderTask(b *testing.B) {
	for _, what := range []string{"metrics", "tracing", "all"} {
		b.Run(what, func(b *testing.B) {
			o := Options{}
			var sink countingSink
			var tp *sdktrace.TracerProvider
			if what != "tracing" {
				o.Registerer = prometheus.NewRegistry()
			}
			if what != "metrics" {
				tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(&sink))
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
			cpu := startCPU(b)
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
			if tp != nil {
				_ = tp.ForceFlush(ctx)
			}
			cpu.stop(b)
			if tp != nil {
				b.ReportMetric(float64(sink.n.Load())/float64(b.N), "exported/op")
			}
		})
	}
}
