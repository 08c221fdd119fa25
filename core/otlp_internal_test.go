package core

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskiq-go/taskiq/internal/config"
)

// telemetry.sample_ratio samples new traces at its ratio and follows a
// sampled parent (a kicker's, in Go or Python) whatever the ratio;
// OTEL_TRACES_SAMPLER wins over it.
func TestSampleRatio(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	require.NoError(t, os.Unsetenv("OTEL_TRACES_SAMPLER"))

	require.Nil(t, sampler(config.Telemetry{}), "no ratio: the SDK's default")
	decide := func(s sdktrace.Sampler, parent context.Context) sdktrace.SamplingDecision {
		return s.ShouldSample(sdktrace.SamplingParameters{ParentContext: parent, TraceID: trace.TraceID{1}, Name: "process default"}).Decision
	}
	sampledParent := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{2}, SpanID: trace.SpanID{3}, TraceFlags: trace.FlagsSampled, Remote: true}))

	none, all := 0.0, 1.0
	require.Equal(t, sdktrace.Drop, decide(sampler(config.Telemetry{SampleRatio: &none}), context.Background()))
	require.Equal(t, sdktrace.RecordAndSample, decide(sampler(config.Telemetry{SampleRatio: &none}), sampledParent))
	require.Equal(t, sdktrace.RecordAndSample, decide(sampler(config.Telemetry{SampleRatio: &all}), context.Background()))

	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	require.Nil(t, sampler(config.Telemetry{SampleRatio: &none}), "the variable wins")
}
