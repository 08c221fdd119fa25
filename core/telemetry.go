package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskiq-go/taskiq/core/internal/telemetry"
)

// Observability (docs/observability.md). Each option turns one part on; an
// App with none of them records nothing and pays nothing.

// WithMetrics registers the App's Prometheus metrics with reg: tasks
// kicked, received, started, succeeded, failed, retried, requeued,
// dead-lettered and cancelled; execution, wait (kick to start) and result
// save times; running tasks and held deliveries; plugin restarts and call
// errors. Serve reg with promhttp (taskiq worker does, with --metrics-addr).
func WithMetrics(reg prometheus.Registerer) Option {
	return func(a *App) error { a.telOpts.Registerer = reg; return nil }
}

// WithTracing records a producer span per kick ("send <queue>") and a
// consumer span per run ("process <queue>") with tp, and carries the trace
// context in the message labels as Python taskiq's OpenTelemetryMiddleware
// does (traceparent, tracestate), so traces join across Go and Python.
func WithTracing(tp trace.TracerProvider) Option {
	return func(a *App) error { a.telOpts.TracerProvider = tp; return nil }
}

// WithMeterProvider records OpenTelemetry's messaging metrics
// (messaging.client.sent.messages, messaging.client.consumed.messages,
// messaging.client.operation.duration, messaging.process.duration) with mp.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(a *App) error { a.telOpts.MeterProvider = mp; return nil }
}

// QueueStat is one queue's figures for the queue gauges.
type QueueStat = telemetry.QueueStat

// QueueStatsFunc reads the figures of the queues, typically from a
// broker's inspector.
type QueueStatsFunc = telemetry.QueueStatsFunc

// WithQueueStats serves taskiq_queue_depth and
// taskiq_queue_oldest_age_seconds from read, called once at start and then
// every interval (0 is taskiq.hcl's telemetry.queue_stats_interval, else
// 15s); a scrape reads the cached figures and never makes the broker
// count. A nil read is App.QueueStats: the queues of every broker whose
// inspection role the App has. It needs WithMetrics.
func WithQueueStats(read QueueStatsFunc, every time.Duration) Option {
	return func(a *App) error {
		if read == nil {
			read = a.QueueStats
		}
		a.queueStats, a.queueStatsEvery = read, every
		return nil
	}
}

// QueueStats reads the figures of the queues of every broker with an
// inspection role (Inspector.Queues): depth is the queued messages (not
// the delayed ones), oldest age that of the oldest queued one. Brokers
// without the role are skipped; an error of any broker is returned (the
// queue gauges then keep their last figures).
func (a *App) QueueStats(ctx context.Context) ([]QueueStat, error) {
	var out []QueueStat
	for _, name := range a.BrokerNames() {
		in := a.brokers[name].insp
		if in == nil {
			continue
		}
		qs, err := in.Queues(ctx)
		if err != nil {
			return nil, fmt.Errorf("broker %q: queues: %w", name, err)
		}
		for _, q := range qs {
			out = append(out, QueueStat{Broker: name, Queue: q.Name, Depth: q.Queued, OldestAge: q.OldestAge})
		}
	}
	return out, nil
}

// startTelemetry builds the App's Recorder from the options and starts the
// queue gauges; App.Close stops them.
func (a *App) startTelemetry() error {
	if a.telOpts.Now == nil {
		a.telOpts.Now = a.clock.Now
	}
	rec, err := telemetry.New(a.telOpts)
	if err != nil {
		return err
	}
	a.tel = rec
	if a.queueStats != nil {
		if a.telOpts.Registerer == nil {
			return errors.New("taskiq: WithQueueStats needs WithMetrics")
		}
		w, err := rec.WatchQueues(a.telOpts.Registerer, a.queueStats, a.queueStatsEvery, a.clock.After, a.logger)
		if err != nil {
			return err
		}
		a.closers = append(a.closers, func(context.Context) error { w.Shutdown(); return nil })
	}
	for _, p := range a.plugins {
		if rec != nil {
			p.Observe(rec)
		}
	}
	return nil
}

// outcomeFlags is what the metrics count for a run's outcome.
func outcomeFlags(o runOutcome) telemetry.Outcome {
	switch o {
	case runOK:
		return telemetry.Succeeded
	case runFailed:
		return telemetry.Failed
	case runNoResult:
		return telemetry.Failed | telemetry.Retried
	case runDeadLetter, runDeadLetterNoResult:
		return telemetry.Failed | telemetry.DeadLettered
	case runRequeue:
		return telemetry.Requeued
	case runReject:
		return telemetry.DeadLettered
	case runShutdown:
		return telemetry.Cancelled
	}
	return 0
}

// Logger returns the App's logger with the task's fields: task_id,
// task_name, queue and attempt, and, when tracing is on, trace_id and
// span_id. Every line the worker logs about a task carries them.
func (c *Context) Logger() hclog.Logger {
	if c.Message == nil {
		return c.app.logger // not decoded: no task to speak of
	}
	c.logMu.Lock()
	defer c.logMu.Unlock()
	if c.logger == nil {
		c.logger = c.app.logger.With(c.logFields()...)
	}
	return c.logger
}

func (c *Context) logFields() []any {
	f := []any{"task_id", c.Message.TaskID, "task_name", c.Message.TaskName, "queue", c.queue(), "attempt", c.Delivery.Attempt}
	return append(f, c.run.LogFields()...)
}

// queue is the queue of the message as metrics and spans name it.
func (c *Context) queue() string { return telemetry.QueueOf(c.Message) }
