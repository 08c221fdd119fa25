package core

import (
	"context"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/taskiq-go/taskiq/internal/config"
)

// configureTelemetry applies taskiq.hcl's telemetry block under the
// caller's options: with tracing = true and no WithTracing or
// WithMeterProvider of the caller's, spans and messaging metrics are
// exported over OTLP/HTTP, configured by the standard OTEL_EXPORTER_OTLP_*
// variables (otlp_endpoint wins over them). App.Close flushes and stops the
// exporters.
func (a *App) configureTelemetry(ctx context.Context, t config.Telemetry) error {
	if a.queueStatsEvery == 0 {
		a.queueStatsEvery = t.QueueStatsInterval
	}
	// Workers of this file measure the wait from kick to start: its
	// clients (taskiq kick, an application) stamp their kicks.
	a.telOpts.StampKicks = a.telOpts.StampKicks || t.MetricsAddr != "" || t.Tracing
	if !t.Tracing {
		return nil
	}
	name := t.ServiceName
	if env := os.Getenv("OTEL_SERVICE_NAME"); env != "" {
		name = env
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(name)))
	if err != nil {
		return err
	}
	if a.telOpts.TracerProvider == nil {
		var opts []otlptracehttp.Option
		if t.OTLPEndpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(signalURL(t.OTLPEndpoint, "traces")))
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return err
		}
		tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
		if s := sampler(t); s != nil {
			tpOpts = append(tpOpts, sdktrace.WithSampler(s))
		}
		tp := sdktrace.NewTracerProvider(tpOpts...)
		a.telOpts.TracerProvider = tp
		a.closers = append(a.closers, tp.Shutdown)
	}
	if a.telOpts.MeterProvider == nil {
		var opts []otlpmetrichttp.Option
		if t.OTLPEndpoint != "" {
			opts = append(opts, otlpmetrichttp.WithEndpointURL(signalURL(t.OTLPEndpoint, "metrics")))
		}
		exp, err := otlpmetrichttp.New(ctx, opts...)
		if err != nil {
			return err
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)), sdkmetric.WithResource(res))
		a.telOpts.MeterProvider = mp
		a.closers = append(a.closers, mp.Shutdown)
	}
	return nil
}

// sampler is the sampler of telemetry.sample_ratio: new traces sampled at
// that ratio, spans with a parent as the parent was. nil, which leaves the
// SDK to read OTEL_TRACES_SAMPLER (its default samples every span), when the
// block sets no ratio or the variable is set: the variable wins, as
// OTEL_SERVICE_NAME does over service_name.
func sampler(t config.Telemetry) sdktrace.Sampler {
	if t.SampleRatio == nil || os.Getenv("OTEL_TRACES_SAMPLER") != "" {
		return nil
	}
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*t.SampleRatio))
}

// signalURL is a signal's URL under the collector's base URL, as for
// OTEL_EXPORTER_OTLP_ENDPOINT: <base>/v1/<signal>.
func signalURL(base, signal string) string {
	return strings.TrimSuffix(base, "/") + "/v1/" + signal
}
