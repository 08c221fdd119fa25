package telemetry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// otelMetrics are OpenTelemetry's messaging metrics (semantic conventions
// for messaging clients): messages sent and consumed, the duration of a
// send and of processing a message. The two counters are observed: each
// series counts in atomics on the hot path, and a callback reports the
// totals when a reader collects, which costs a kick or a delivery one
// atomic add instead of an SDK measurement.
type otelMetrics struct {
	sentMessages, consumedMessages metric.Int64ObservableCounter
	operationDuration, processDur  metric.Float64Histogram
}

// newOtelMetrics makes the instruments on m; each calls its argument with
// every series, for the callback of the observed counters.
func newOtelMetrics(m metric.Meter, each func(func(*series))) (*otelMetrics, error) {
	var o otelMetrics
	var err error
	if o.sentMessages, err = m.Int64ObservableCounter("messaging.client.sent.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Number of messages a producer attempted to send to the broker.")); err != nil {
		return nil, err
	}
	if o.consumedMessages, err = m.Int64ObservableCounter("messaging.client.consumed.messages", metric.WithUnit("{message}"),
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
	if _, err = m.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		each(func(s *series) { s.otel.observe(obs, &o) })
		return nil
	}, o.sentMessages, o.consumedMessages); err != nil {
		return nil, err
	}
	return &o, nil
}

// otelSeries are the attribute sets of one queue and the measurement
// options that carry them, built once, and the series' counts of the
// observed counters.
type otelSeries struct {
	send, receive, process          attribute.Set
	sendOpt, receiveOpt, processOpt metric.MeasurementOption
	sent, consumed                  atomic.Int64
	// failedSends counts the sends that failed, by error.type.
	failedMu    sync.Mutex
	failedSends map[string]*failedSends
}

// failedSends counts the failed sends of one error.type.
type failedSends struct {
	n   atomic.Int64
	opt metric.MeasurementOption // the send set plus error.type
}

func newOtelSeries(queue string) *otelSeries {
	base := []attribute.KeyValue{semconv.MessagingSystemKey.String(messagingSystem), semconv.MessagingDestinationName(queue)}
	with := func(kv ...attribute.KeyValue) attribute.Set {
		return attribute.NewSet(append(append([]attribute.KeyValue(nil), base...), kv...)...)
	}
	o := &otelSeries{
		send:    with(semconv.MessagingOperationName("send"), semconv.MessagingOperationTypeSend),
		receive: with(semconv.MessagingOperationName("receive"), semconv.MessagingOperationTypeReceive),
		process: with(semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess),
	}
	o.sendOpt, o.receiveOpt, o.processOpt = metric.WithAttributeSet(o.send), metric.WithAttributeSet(o.receive), metric.WithAttributeSet(o.process)
	return o
}

// observe reports the series' counts; a count still at zero is left out,
// as a counter never added to is.
func (s *otelSeries) observe(obs metric.Observer, o *otelMetrics) {
	if n := s.sent.Load(); n > 0 {
		obs.ObserveInt64(o.sentMessages, n, s.sendOpt)
	}
	if n := s.consumed.Load(); n > 0 {
		obs.ObserveInt64(o.consumedMessages, n, s.receiveOpt)
	}
	s.failedMu.Lock()
	defer s.failedMu.Unlock()
	for _, f := range s.failedSends {
		obs.ObserveInt64(o.sentMessages, f.n.Load(), f.opt)
	}
}

// failed is the count of failed sends of errType, made on first use.
func (s *otelSeries) failed(errType string) *failedSends {
	s.failedMu.Lock()
	defer s.failedMu.Unlock()
	f := s.failedSends[errType]
	if f == nil {
		if s.failedSends == nil {
			s.failedSends = map[string]*failedSends{}
		}
		f = &failedSends{opt: metric.WithAttributeSet(withError(s.send, errType))}
		s.failedSends[errType] = f
	}
	return f
}

// withError is set plus error.type.
func withError(set attribute.Set, errType string) attribute.Set {
	kvs := append(set.ToSlice(), semconv.ErrorTypeKey.String(errType))
	return attribute.NewSet(kvs...)
}

func (o *otelMetrics) sent(s *series, took time.Duration, err error) {
	opt := s.otel.sendOpt
	if err != nil {
		f := s.otel.failed(errorType(err))
		f.n.Add(1)
		opt = f.opt
	} else {
		s.otel.sent.Add(1)
	}
	o.operationDuration.Record(context.Background(), took.Seconds(), opt)
}

func (o *otelMetrics) consumed(s *series) { s.otel.consumed.Add(1) }

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
