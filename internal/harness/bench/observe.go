package bench

import (
	"context"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskiq-go/taskiq/core"
)

// observer turns on everything the host can record, for --observe:
// Prometheus metrics into a registry that is gathered once at the end (as
// one scrape would), spans through the SDK's batching processor into an
// exporter that counts and drops them, and the OpenTelemetry messaging
// metrics into a manual reader, read once at the end. Nothing leaves the
// process, so the run measures the host's cost alone.
type observer struct {
	reg    *prometheus.Registry
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
	reader *sdkmetric.ManualReader
	sink   countingExporter
}

func newObserver() *observer {
	o := &observer{reg: prometheus.NewRegistry(), reader: sdkmetric.NewManualReader()}
	o.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(&o.sink))
	o.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	return o
}

func (o *observer) options() []core.Option {
	return []core.Option{core.WithMetrics(o.reg), core.WithTracing(o.tp), core.WithMeterProvider(o.mp)}
}

// finish flushes the spans, gathers the metrics once and returns how many
// spans were exported.
func (o *observer) finish(ctx context.Context) (int64, error) {
	if err := o.tp.Shutdown(ctx); err != nil {
		return 0, err
	}
	if _, err := o.reg.Gather(); err != nil {
		return 0, err
	}
	if err := o.mp.Shutdown(ctx); err != nil {
		return 0, err
	}
	return o.sink.spans.Load(), nil
}

// countingExporter is the in-memory sink of the spans: it counts them.
type countingExporter struct{ spans atomic.Int64 }

func (e *countingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.spans.Add(int64(len(spans)))
	return nil
}

func (e *countingExporter) Shutdown(context.Context) error { return nil }
