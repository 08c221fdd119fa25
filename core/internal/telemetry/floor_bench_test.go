package telemetry

import (
	"context"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// cpuMeter reports the CPU time of the whole process (every goroutine:
// the benchmark's, the batch processor's, the GC's) per operation as
// cpu-ns/op, which on a saturated machine is what a configuration costs
// in throughput; ns/op is wall time.
type cpuMeter struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) *cpuMeter {
	b.ResetTimer()
	return &cpuMeter{start: processCPU()}
}

func (m *cpuMeter) stop(b *testing.B) {
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-m.start)/float64(b.N), "cpu-ns/op")
}

// countingSink counts the spans the batching processor exports.
type countingSink struct{ n atomic.Int64 }

func (s *countingSink) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	s.n.Add(int64(len(spans)))
	return nil
}
func (s *countingSink) Shutdown(context.Context) error { return nil }

// BenchmarkOTelFloor is the bare OpenTelemetry work the messaging
// conventions ask of one task, without the Recorder: a producer span and a
// consumer span with their attributes (system, operation type and name,
// destination, message id, task name; the attempt on the consumer span)
// through the batching processor, the trace context injected into and
// extracted from a label map, the two duration histograms recorded with
// attribute sets made once, and the two message counters as atomic adds
// (observed counters). "spans" is the span part alone, "metrics" the
// metric part alone. The processor blocks on a full queue rather than
// drop a span, so every span is exported; cpu-ns/op is the floor the SDK sets on the host's
// added CPU per task; exported/op checks that no span was dropped.
func BenchmarkOTelFloor(b *testing.B) {
	for _, what := range []string{"spans", "metrics", "all"} {
		b.Run(what, func(b *testing.B) {
			ctx := context.Background()
			var sink countingSink
			// Blocking: a full queue waits instead of dropping, so that every
			// span is exported and counted in the CPU.
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(&sink, sdktrace.WithBlocking()))
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			tracer := tp.Tracer(instrumentation)
			meter := mp.Meter(instrumentation)
			sendDur, _ := meter.Float64Histogram("messaging.client.operation.duration", metric.WithUnit("s"),
				metric.WithExplicitBucketBoundaries(durationBuckets...))
			procDur, _ := meter.Float64Histogram("messaging.process.duration", metric.WithUnit("s"),
				metric.WithExplicitBucketBoundaries(durationBuckets...))
			os := newOtelSeries("default")
			prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
			base := func(opType attribute.KeyValue, op string) []attribute.KeyValue {
				return []attribute.KeyValue{semconv.MessagingSystemKey.String(messagingSystem), opType,
					semconv.MessagingOperationName(op), semconv.MessagingDestinationName("default"),
					attribute.String(attrTaskName, "bench.noop")}
			}
			sendBase, procBase := base(semconv.MessagingOperationTypeSend, "send"), base(semconv.MessagingOperationTypeProcess, "process")
			spans, metrics := what != "metrics", what != "spans"
			var sent, consumed atomic.Int64
			b.ReportAllocs()
			cpu := startCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				carrier := propagation.MapCarrier{}
				kvs := make([]attribute.KeyValue, 0, 8)
				i := 0
				for pb.Next() {
					i++
					id := strconv.Itoa(i)
					begin := time.Now()
					if spans {
						kvs = append(append(kvs[:0], sendBase...), semconv.MessagingMessageID(id))
						sctx, span := tracer.Start(ctx, "send default", trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(kvs...))
						prop.Inject(sctx, carrier)
						span.End()
					}
					if metrics {
						sent.Add(1)
						sendDur.Record(ctx, time.Since(begin).Seconds(), os.sendOpt)
						consumed.Add(1)
					}
					begin = time.Now()
					if spans {
						parent := prop.Extract(ctx, carrier)
						kvs = append(append(kvs[:0], procBase...), semconv.MessagingMessageID(id), attribute.Int("taskiq.attempt", 1))
						_, span := tracer.Start(parent, "process default", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(kvs...))
						span.End()
					}
					if metrics {
						procDur.Record(ctx, time.Since(begin).Seconds(), os.processOpt)
					}
				}
			})
			_ = tp.ForceFlush(ctx)
			cpu.stop(b)
			if spans {
				b.ReportMetric(float64(sink.n.Load())/float64(b.N), "exported/op")
			}
			_ = tp.Shutdown(ctx)
			_ = mp.Shutdown(ctx)
		})
	}
}
