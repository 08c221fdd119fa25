package telemetry

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// instrumentation is the name of the tracer and meter the host uses.
const instrumentation = "github.com/taskiq-go/taskiq"

// messagingSystem is the messaging.system attribute of every span.
const messagingSystem = "taskiq"

// Options says what a Recorder records; a nil field is off.
type Options struct {
	// Registerer receives the Prometheus collectors.
	Registerer prometheus.Registerer
	// TracerProvider makes the spans of kicks and runs.
	TracerProvider trace.TracerProvider
	// MeterProvider records OpenTelemetry's messaging metrics.
	MeterProvider metric.MeterProvider
	// Propagator carries trace context in message labels; nil is W3C trace
	// context and baggage, what Python's OpenTelemetry uses by default.
	Propagator propagation.TextMapPropagator
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// StampKicks writes the kick time into every message kicked, even with
	// everything else off: a client that kicks for workers that measure
	// the wait (the same taskiq.hcl with a telemetry block).
	StampKicks bool
}

// Recorder records the metrics and spans of one App. Its methods may be
// called on a nil Recorder, which records nothing.
type Recorder struct {
	now    func() time.Time
	prom   *metrics
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	otelm  *otelMetrics

	tasks, queues boundedSet
	series        sync.Map // seriesKey -> *series
	// last is the series get returned last: a worker of one task, or a
	// burst of kicks of one, finds it without hashing the two names into
	// the map. Its names are the bounded ones, so a name past the bound
	// (whose series is Other's) never matches and takes the map.
	last atomic.Pointer[series]
}

// New returns a Recorder for o, or nil when o turns everything off.
func New(o Options) (*Recorder, error) {
	if o.Registerer == nil && o.TracerProvider == nil && o.MeterProvider == nil && !o.StampKicks {
		return nil, nil
	}
	r := &Recorder{now: o.Now, prop: o.Propagator}
	if r.now == nil {
		r.now = time.Now
	}
	if r.prop == nil {
		r.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	if o.Registerer != nil {
		m, err := newMetrics(o.Registerer)
		if err != nil {
			return nil, err
		}
		r.prom = m
	}
	if o.TracerProvider != nil {
		r.tracer = o.TracerProvider.Tracer(instrumentation)
	}
	if o.MeterProvider != nil {
		m, err := newOtelMetrics(o.MeterProvider.Meter(instrumentation), r.eachSeries)
		if err != nil {
			return nil, err
		}
		r.otelm = m
	}
	return r, nil
}

// eachSeries calls fn with every series made so far.
func (r *Recorder) eachSeries(fn func(*series)) {
	r.series.Range(func(_, v any) bool {
		fn(v.(*series))
		return true
	})
}

// Tracing reports whether spans are recorded.
func (r *Recorder) Tracing() bool { return r != nil && r.tracer != nil }

type seriesKey struct{ task, queue string }

// series is what the Recorder keeps per task and queue, resolved once so
// that a kick or a run touches no map but the one lookup of its series:
// the Prometheus collectors, the OpenTelemetry attribute sets and the span
// names and attributes that do not change from message to message.
type series struct {
	task, queue string
	prom        *promSeries
	otel        *otelSeries // nil without OpenTelemetry metrics
	// sendAttrs and processAttrs are the constant attributes of the spans
	// of the series' kicks and runs, sendName and processName their names.
	sendAttrs, processAttrs []attribute.KeyValue
	sendName, processName   string
	// exactTask: task is the message's own task name (not Other), so the
	// constant attributes carry it.
	exactTask bool
}

// get returns the series of a message of task on queue (raw names). The
// series map is keyed by the raw names only while both are within the
// label bounds, so it stays bounded; a name past the bound takes the slow
// path to the Other series.
func (r *Recorder) get(task, queue string) *series {
	if queue == "" {
		queue = DefaultQueue
	}
	if s := r.last.Load(); s != nil && s.task == task && s.queue == queue {
		return s
	}
	s := r.lookup(task, queue)
	r.last.Store(s)
	return s
}

// lookup is get past the last series.
func (r *Recorder) lookup(task, queue string) *series {
	k := seriesKey{task, queue}
	if s, ok := r.series.Load(k); ok {
		return s.(*series)
	}
	bt, bq := r.tasks.value(task), r.queues.value(queue)
	if bt != task || bq != queue {
		k = seriesKey{bt, bq}
		if s, ok := r.series.Load(k); ok {
			return s.(*series)
		}
	}
	s := r.newSeries(bt, bq)
	got, _ := r.series.LoadOrStore(k, s)
	return got.(*series)
}

func (r *Recorder) newSeries(task, queue string) *series {
	s := &series{task: task, queue: queue, exactTask: task != Other,
		sendName: "send " + queue, processName: "process " + queue}
	if r.prom != nil {
		s.prom = r.prom.series(task, queue)
	}
	if r.otelm != nil {
		s.otel = newOtelSeries(queue)
	}
	attrs := func(opType attribute.KeyValue, op string) []attribute.KeyValue {
		kvs := []attribute.KeyValue{
			semconv.MessagingSystemKey.String(messagingSystem),
			opType,
			semconv.MessagingOperationName(op),
			semconv.MessagingDestinationName(queue),
		}
		if s.exactTask {
			kvs = append(kvs, attribute.String(attrTaskName, task))
		}
		return kvs
	}
	s.sendAttrs = attrs(semconv.MessagingOperationTypeSend, "send")
	s.processAttrs = attrs(semconv.MessagingOperationTypeProcess, "process")
	return s
}

// The span kinds, as options made once.
var (
	producerKind = trace.WithSpanKind(trace.SpanKindProducer)
	consumerKind = trace.WithSpanKind(trace.SpanKindConsumer)
)

// attrTaskName is the span attribute of the task name.
const attrTaskName = "taskiq.task_name"

// QueueOf is the queue label of a message, the same on the kicking and the
// running side: its queue_name label, or DefaultQueue for the broker's
// default queue (whose name only the broker knows).
func QueueOf(msg *wire.Message) string {
	if q, ok := msg.LabelString(wire.LabelQueueName); ok && q != "" {
		return q
	}
	return DefaultQueue
}

// StampKick writes the kick time into msg's labels (wire.LabelQueueTime), from
// which the worker measures the wait; a requeued or retried copy gets a
// new one.
func (r *Recorder) StampKick(msg *wire.Message) {
	if r == nil {
		return
	}
	t := r.now()
	msg.SetLabel(wire.LabelQueueTime, float64(t.UnixNano())/1e9)
}

// Kicked counts msg as sent to a broker.
func (r *Recorder) Kicked(msg *wire.Message) {
	if r == nil || r.prom == nil {
		return
	}
	r.get(msg.TaskName, QueueOf(msg)).prom.kicked.Inc()
}

// Send is the span of one kick.
type Send struct {
	r     *Recorder
	s     *series
	span  trace.Span
	begin time.Time
}

// StartSend starts the producer span of a kick of msg ("send <queue>") and
// injects its trace context into msg's labels. End it once the broker took
// the message.
func (r *Recorder) StartSend(ctx context.Context, msg *wire.Message) (context.Context, *Send) {
	if r == nil || (r.tracer == nil && r.otelm == nil) {
		return ctx, nil
	}
	s := r.get(msg.TaskName, QueueOf(msg))
	snd := &Send{r: r, s: s, begin: r.now()}
	if r.tracer != nil {
		kvs := s.spanAttrs(s.sendAttrs, msg, -1)
		ctx, snd.span = r.tracer.Start(ctx, s.sendName, producerKind, trace.WithAttributes(*kvs...))
		putAttrs(kvs)
		r.prop.Inject(ctx, labelCarrier{msg})
	}
	return ctx, snd
}

// spanAttrs are the attributes of a span of the series: its constant
// ones and those of msg itself (its id, its task name when the series' is
// Other, and the attempt of a run; -1 for a kick), in one list from a pool.
// Start copies the list (trace.NewSpanStartConfig appends it to a
// configuration of its own), so it goes back with putAttrs once the span
// has started.
func (s *series) spanAttrs(constant []attribute.KeyValue, msg *wire.Message, attempt int) *[]attribute.KeyValue {
	p := attrPool.Get().(*[]attribute.KeyValue)
	kvs := append((*p)[:0], constant...)
	kvs = append(kvs, semconv.MessagingMessageID(msg.TaskID))
	if !s.exactTask {
		kvs = append(kvs, attribute.String(attrTaskName, msg.TaskName))
	}
	if attempt >= 0 {
		kvs = append(kvs, attribute.Int("taskiq.attempt", attempt))
	}
	*p = kvs
	return p
}

// attrPool holds the attribute lists of spans being started.
var attrPool = sync.Pool{New: func() any {
	kvs := make([]attribute.KeyValue, 0, 8)
	return &kvs
}}

func putAttrs(p *[]attribute.KeyValue) {
	clear(*p) // drop the references to the message's strings
	attrPool.Put(p)
}

// End ends the kick's span, with err as its status.
func (snd *Send) End(err error) {
	if snd == nil {
		return
	}
	if snd.r.otelm != nil {
		snd.r.otelm.sent(snd.s, snd.r.now().Sub(snd.begin), err)
	}
	if snd.span != nil {
		if err != nil {
			snd.span.RecordError(err)
			snd.span.SetStatus(codes.Error, err.Error())
		}
		snd.span.End()
	}
}

// Held adds delta to the deliveries the worker holds.
func (r *Recorder) Held(delta int) {
	if r == nil || r.prom == nil {
		return
	}
	r.prom.prefetched.Add(float64(delta))
}

// Invalid counts a delivery that cannot run (unparseable, unknown task,
// too large) as received and dead-lettered, under the task Unknown; its
// labels are not trusted, so its queue is DefaultQueue.
func (r *Recorder) Invalid() {
	if r == nil || r.prom == nil {
		return
	}
	s := r.get(Unknown, DefaultQueue)
	s.prom.received.Inc()
	s.prom.deadLettered.Inc()
}

// Outcome is what became of a run, for the counters; flags combine (a run
// that failed and was dead-lettered is Failed|DeadLettered).
type Outcome uint8

// Outcomes of a run.
const (
	Succeeded Outcome = 1 << iota
	Failed
	Retried
	Requeued
	DeadLettered
	Cancelled
	// Unsaved: the run ended but its result could not be saved; the
	// message goes back to the queue.
	Unsaved
)

// Run is the telemetry of one task run, from its delivery to its
// settlement. A nil Run records nothing.
type Run struct {
	r       *Recorder
	s       *series
	msg     *wire.Message
	span    trace.Span
	begin   time.Time
	running bool
}

// StartRun counts a delivery of msg as received and starts its consumer
// span ("process <queue>"), a child of the trace context in msg's labels.
// The returned context carries the span.
func (r *Recorder) StartRun(ctx context.Context, msg *wire.Message, attempt int) (context.Context, *Run) {
	if r == nil {
		return ctx, nil
	}
	s := r.get(msg.TaskName, QueueOf(msg))
	run := &Run{r: r, s: s, msg: msg, begin: r.now()}
	if s.prom != nil {
		s.prom.received.Inc()
	}
	if r.otelm != nil {
		r.otelm.consumed(s)
	}
	if r.tracer != nil {
		parent := r.prop.Extract(ctx, labelCarrier{msg})
		kvs := s.spanAttrs(s.processAttrs, msg, attempt)
		ctx, run.span = r.tracer.Start(parent, s.processName, consumerKind, trace.WithAttributes(*kvs...))
		putAttrs(kvs)
	}
	return ctx, run
}

// Started records that the task got a running slot and starts: the wait
// since its kick is observed.
func (run *Run) Started() {
	if run == nil || run.s.prom == nil {
		return
	}
	p := run.s.prom
	p.started.Inc()
	p.running.Inc()
	run.running = true
	if t, ok := kickTime(run.msg); ok {
		p.wait.Observe(max(run.r.now().Sub(t).Seconds(), 0))
	}
}

// Executed records the end of the task function: how long it ran and its
// error.
func (run *Run) Executed(took time.Duration, err error) {
	if run == nil {
		return
	}
	if p := run.s.prom; p != nil {
		if run.running {
			p.running.Dec()
			run.running = false
		}
		p.execution.Observe(took.Seconds())
	}
	if run.span != nil && err != nil {
		run.span.RecordError(err)
		run.span.SetStatus(codes.Error, err.Error())
	}
}

// Saved records how long saving the result took.
func (run *Run) Saved(took time.Duration) {
	if run == nil || run.s.prom == nil {
		return
	}
	run.s.prom.save.Observe(took.Seconds())
}

// End counts the run's outcome and ends its span.
func (run *Run) End(o Outcome) {
	if run == nil {
		return
	}
	if p := run.s.prom; p != nil {
		if run.running { // never reached Executed (cut off by shutdown)
			p.running.Dec()
		}
		for _, c := range []struct {
			flag Outcome
			c    prometheus.Counter
		}{{Succeeded, p.succeeded}, {Failed, p.failed}, {Retried, p.retried}, {Requeued, p.requeued},
			{DeadLettered, p.deadLettered}, {Cancelled, p.cancelled}} {
			if o&c.flag != 0 {
				c.c.Inc()
			}
		}
	}
	if run.r.otelm != nil {
		run.r.otelm.processed(run.s, run.r.now().Sub(run.begin), o)
	}
	if run.span != nil {
		switch {
		case o&Unsaved != 0:
			run.span.SetStatus(codes.Error, "result not saved")
		case o&Cancelled != 0:
			run.span.SetStatus(codes.Error, "cancelled by shutdown")
		case o&DeadLettered != 0:
			run.span.SetAttributes(attribute.Bool("taskiq.dead_lettered", true))
		}
		if o&Retried != 0 {
			run.span.SetAttributes(attribute.Bool("taskiq.retried", true))
		}
		run.span.End()
	}
}

// LogFields returns the trace and span ids of the run's span, for its log
// lines; nil when it has none.
func (run *Run) LogFields() []any {
	if run == nil || run.span == nil {
		return nil
	}
	sc := run.span.SpanContext()
	if !sc.IsValid() {
		return nil
	}
	return []any{"trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String()}
}

// PluginRestarted counts a restart of the plugin process of a block.
func (r *Recorder) PluginRestarted(kind, name string) {
	if r == nil || r.prom == nil {
		return
	}
	r.prom.pluginRestarts.WithLabelValues(kind, name).Inc()
}

// PluginCallFailed counts a failed call to the plugin process of a block.
func (r *Recorder) PluginCallFailed(kind, name string) {
	if r == nil || r.prom == nil {
		return
	}
	r.prom.pluginCallErrors.WithLabelValues(kind, name).Inc()
}

// errorType is the error.type attribute of a failed operation.
func errorType(err error) string {
	var typed interface{ ErrorType() string }
	if errors.As(err, &typed) {
		return typed.ErrorType()
	}
	return "_OTHER"
}
