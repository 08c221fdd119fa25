package bench

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskiq-go/taskiq/core"
)

// observer turns on what the host can record, for --observe:
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

func newObserver(what string) (*observer, error) {
	o := &observer{reg: prometheus.NewRegistry(), reader: sdkmetric.NewManualReader()}
	switch what {
	case "metrics":
		return o, nil
	case "tracing", "all":
		o.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(&o.sink))
		o.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
		if what == "tracing" {
			o.reg = nil
		}
		return o, nil
	}
	return nil, fmt.Errorf("--observe %q: use metrics, tracing or all", what)
}

func (o *observer) options() []core.Option {
	var opts []core.Option
	if o.reg != nil {
		opts = append(opts, core.WithMetrics(o.reg))
	}
	if o.tp != nil {
		opts = append(opts, core.WithTracing(o.tp), core.WithMeterProvider(o.mp))
	}
	return opts
}

// finish flushes the spans, gathers the metrics once and returns how many
// spans were exported.
func (o *observer) finish(ctx context.Context) (int64, error) {
	if o.reg != nil {
		if _, err := o.reg.Gather(); err != nil {
			return 0, err
		}
	}
	if o.tp == nil {
		return 0, nil
	}
	if err := o.tp.Shutdown(ctx); err != nil {
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
