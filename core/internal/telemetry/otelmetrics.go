package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// otelMetrics are OpenTelemetry's messaging metrics (semantic conventions
// for messaging clients): messages sent and consumed, the duration of a
// send and of processing a message.
type otelMetrics struct {
	sentMessages, consumedMessages metric.Int64Counter
	operationDuration, processDur  metric.Float64Histogram
}

func newOtelMetrics(m metric.Meter) (*otelMetrics, error) {
	var o otelMetrics
	var err error
	if o.sentMessages, err = m.Int64Counter("messaging.client.sent.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Number of messages a producer attempted to send to the broker.")); err != nil {
		return nil, err
	}
	if o.consumedMessages, err = m.Int64Counter("messaging.client.consumed.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Number of messages delivered to the worker.")); err != nil {
		return nil, err
	}
	if o.operationDuration, err = m.Float64Histogram("messaging.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of a send operation."), metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return nil, err
	}
	if o.processDur, err = m.Float64Histogram("messaging.process.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of processing a message: running the task, saving its result, settling it."),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return nil, err
	}
	return &o, nil
}

// otelSeries are the attribute sets of one queue and the measurement
// options that carry them, built once.
type otelSeries struct {
	send, receive, process          attribute.Set
	sendOpt, receiveOpt, processOpt metric.MeasurementOption
}

func newOtelSeries(queue string) otelSeries {
	base := []attribute.KeyValue{semconv.MessagingSystemKey.String(messagingSystem), semconv.MessagingDestinationName(queue)}
	with := func(kv ...attribute.KeyValue) attribute.Set {
		return attribute.NewSet(append(append([]attribute.KeyValue(nil), base...), kv...)...)
	}
	o := otelSeries{
		send:    with(semconv.MessagingOperationName("send"), semconv.MessagingOperationTypeSend),
		receive: with(semconv.MessagingOperationName("receive"), semconv.MessagingOperationTypeReceive),
		process: with(semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess),
	}
	o.sendOpt, o.receiveOpt, o.processOpt = metric.WithAttributeSet(o.send), metric.WithAttributeSet(o.receive), metric.WithAttributeSet(o.process)
	return o
}

// withError is set plus error.type.
func withError(set attribute.Set, errType string) attribute.Set {
	kvs := append(set.ToSlice(), semconv.ErrorTypeKey.String(errType))
	return attribute.NewSet(kvs...)
}

func (o *otelMetrics) sent(s *series, took time.Duration, err error) {
	opt := s.otel.sendOpt
	if err != nil {
		opt = metric.WithAttributeSet(withError(s.otel.send, errorType(err)))
	}
	ctx := context.Background()
	o.sentMessages.Add(ctx, 1, opt)
	o.operationDuration.Record(ctx, took.Seconds(), opt)
}

func (o *otelMetrics) consumed(s *series) {
	o.consumedMessages.Add(context.Background(), 1, s.otel.receiveOpt)
}

func (o *otelMetrics) processed(s *series, took time.Duration, out Outcome) {
	opt := s.otel.processOpt
	switch {
	case out&Unsaved != 0:
		opt = metric.WithAttributeSet(withError(s.otel.process, "result_not_saved"))
	case out&Cancelled != 0:
		opt = metric.WithAttributeSet(withError(s.otel.process, "cancelled"))
	case out&Failed != 0:
		opt = metric.WithAttributeSet(withError(s.otel.process, "task_failed"))
	}
	o.processDur.Record(context.Background(), took.Seconds(), opt)
}
