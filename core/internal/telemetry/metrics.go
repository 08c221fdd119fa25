package telemetry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Label names of the task metrics.
const (
	labelTask   = "task"
	labelQueue  = "queue"
	labelKind   = "kind"
	labelPlugin = "plugin"
)

// durationBuckets cover 100 µs to about a minute: a no-op task waits and runs
// in well under a millisecond, a slow one for seconds.
var durationBuckets = prometheus.ExponentialBucketsRange(0.0001, 60, 18)

// metrics are the Prometheus collectors of one Recorder.
type metrics struct {
	kicked, received, started, succeeded, failed, retried, requeued, deadLettered, cancelled *prometheus.CounterVec
	execution, wait, save                                                                    *prometheus.HistogramVec
	running                                                                                  *prometheus.GaugeVec
	prefetched                                                                               prometheus.Gauge
	pluginRestarts, pluginCallErrors                                                         *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	taskLabels := []string{labelTask, labelQueue}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "taskiq", Name: name, Help: help}, taskLabels)
	}
	histogram := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "taskiq", Name: name, Help: help, Buckets: durationBuckets}, taskLabels)
	}
	pluginLabels := []string{labelKind, labelPlugin}
	m := &metrics{
		kicked:       counter("tasks_kicked_total", "Messages sent to a broker (kicks, requeues and kicks by middlewares)."),
		received:     counter("tasks_received_total", "Deliveries the worker received, valid or not."),
		started:      counter("tasks_started_total", "Task runs started."),
		succeeded:    counter("tasks_succeeded_total", "Task runs that returned without error."),
		failed:       counter("tasks_failed_total", "Task runs that returned an error (timeouts and panics included)."),
		retried:      counter("tasks_retried_total", "Failed runs an on_error middleware took over to retry (it asked for no result)."),
		requeued:     counter("tasks_requeued_total", "Runs that called Context.Requeue."),
		deadLettered: counter("tasks_dead_lettered_total", "Messages moved to the dead-letter store: invalid, rejected, or sent there by a middleware."),
		cancelled:    counter("tasks_cancelled_total", "Runs cut off (or never started) by the worker's shutdown timeout; their messages are redelivered."),
		execution:    histogram("task_execution_seconds", "Time a task run took, pre_execute middlewares included."),
		wait:         histogram("task_wait_seconds", "Time from the kick to the start of the run (from the _taskiq_queue_time or _taskiq_enqueue_timestamp label)."),
		save:         histogram("result_save_seconds", "Time saving a result took, retries included."),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "taskiq", Name: "tasks_running",
			Help: "Task runs in progress."}, taskLabels),
		prefetched: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "taskiq", Name: "deliveries_prefetched",
			Help: "Deliveries the worker holds: waiting for a slot, running, or finishing (result being saved, ack being sent)."}),
		pluginRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "taskiq", Name: "plugin_restarts_total",
			Help: "Plugin processes restarted after they exited."}, pluginLabels),
		pluginCallErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "taskiq", Name: "plugin_call_errors_total",
			Help: "Calls to a plugin process that failed (after the retry on a restarted process)."}, pluginLabels),
	}
	for _, c := range []prometheus.Collector{m.kicked, m.received, m.started, m.succeeded, m.failed, m.retried, m.requeued,
		m.deadLettered, m.cancelled, m.execution, m.wait, m.save, m.running, m.prefetched, m.pluginRestarts, m.pluginCallErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("taskiq: registering metrics: %w", err)
		}
	}
	return m, nil
}

// promSeries are the collectors of one task and queue, resolved once: the
// hot path then touches atomics only.
type promSeries struct {
	kicked, received, started, succeeded, failed, retried, requeued, deadLettered, cancelled prometheus.Counter
	execution, wait, save                                                                    prometheus.Observer
	running                                                                                  prometheus.Gauge
}

func (m *metrics) series(task, queue string) *promSeries {
	l := []string{task, queue}
	return &promSeries{
		kicked: m.kicked.WithLabelValues(l...), received: m.received.WithLabelValues(l...),
		started: m.started.WithLabelValues(l...), succeeded: m.succeeded.WithLabelValues(l...),
		failed: m.failed.WithLabelValues(l...), retried: m.retried.WithLabelValues(l...),
		requeued: m.requeued.WithLabelValues(l...), deadLettered: m.deadLettered.WithLabelValues(l...),
		cancelled: m.cancelled.WithLabelValues(l...),
		execution: m.execution.WithLabelValues(l...), wait: m.wait.WithLabelValues(l...), save: m.save.WithLabelValues(l...),
		running: m.running.WithLabelValues(l...),
	}
}
