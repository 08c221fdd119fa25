package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

// scrape fetches /metrics from a server serving reg, as Prometheus does,
// and parses the text format.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// value is the value of the series of family name with the given labels:
// a counter's or gauge's value, a histogram's sample count; -1 if absent.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func TestMetricsCountAKnownWorkload(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b := setup(t, core.WithMetrics(reg))
	ok := core.MustTask[int](b.app, "obs.ok", func(a int) (int, error) { return a, nil })
	fail := core.MustTask[int](b.app, "obs.fail", func(int) (int, error) { return 0, errors.New("boom") })
	requeue := core.MustTask[int](b.app, "obs.requeue", func(ctx context.Context) (int, error) {
		tc := core.ContextFrom(ctx)
		if n, _ := tc.Message.LabelInt(core.LabelRequeue); n > 0 {
			return 1, nil
		}
		return 0, tc.Requeue()
	})
	ctx := context.Background()
	var tasks []*core.AsyncTask[int]
	for i := 0; i < 5; i++ {
		at, err := ok.Kiq(ctx, i)
		require.NoError(t, err)
		tasks = append(tasks, at)
	}
	for i := 0; i < 3; i++ {
		at, err := fail.Kiq(ctx, i)
		require.NoError(t, err)
		tasks = append(tasks, at)
	}
	rq, err := requeue.Kiq(ctx)
	require.NoError(t, err)
	tasks = append(tasks, rq)
	_, err = b.app.KickByName(ctx, core.RawKick{TaskName: "obs.nobody-runs-this"})
	require.NoError(t, err)

	stop := b.runWorker(t, core.WorkerOptions{})
	for _, at := range tasks {
		wait(t, at)
	}
	require.Eventually(t, func() bool { return len(b.broker.DeadLetters()) == 1 }, 10*time.Second, time.Millisecond)
	stop() // RunWorker returns once every delivery is settled and counted

	m := scrape(t, reg)
	q := "default"
	for _, c := range []struct {
		name, task string
		want       float64
	}{
		{"taskiq_tasks_kicked_total", "obs.ok", 5},
		{"taskiq_tasks_kicked_total", "obs.fail", 3},
		{"taskiq_tasks_kicked_total", "obs.requeue", 2}, // the kick and the requeue
		{"taskiq_tasks_kicked_total", "obs.nobody-runs-this", 1},
		{"taskiq_tasks_received_total", "obs.ok", 5},
		{"taskiq_tasks_started_total", "obs.ok", 5},
		{"taskiq_tasks_succeeded_total", "obs.ok", 5},
		{"taskiq_tasks_failed_total", "obs.ok", 0},
		{"taskiq_tasks_received_total", "obs.fail", 3},
		{"taskiq_tasks_failed_total", "obs.fail", 3},
		{"taskiq_tasks_succeeded_total", "obs.fail", 0},
		{"taskiq_tasks_started_total", "obs.requeue", 2},
		{"taskiq_tasks_requeued_total", "obs.requeue", 1},
		{"taskiq_tasks_succeeded_total", "obs.requeue", 1},
		// A task this worker does not know collapses into one value.
		{"taskiq_tasks_received_total", "unknown", 1},
		{"taskiq_tasks_dead_lettered_total", "unknown", 1},
		{"taskiq_task_execution_seconds", "obs.ok", 5},
		{"taskiq_task_wait_seconds", "obs.ok", 5},
		{"taskiq_result_save_seconds", "obs.fail", 3},
		{"taskiq_tasks_running", "obs.ok", 0},
	} {
		require.Equal(t, c.want, value(m, c.name, "task", c.task, "queue", q), "%s{task=%q}", c.name, c.task)
	}
	require.Equal(t, 0.0, value(m, "taskiq_deliveries_prefetched"))
	// A name kicked has its series at zero from the kick on; the worker did
	// not count its delivery under it.
	require.Equal(t, 0.0, value(m, "taskiq_tasks_received_total", "task", "obs.nobody-runs-this"))
}

func TestWaitTimeIsReadFromPythonLabels(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	then := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := setup(t, core.WithMetrics(reg))
	core.MustTask[int](b.app, "obs.wait", func() (int, error) { return 1, nil })
	// One message as taskiq's OpenTelemetryMiddleware stamps it (a float of
	// seconds), one as its PrometheusMiddleware does (an ISO timestamp); both
	// long ago, so the wait lands in the top bucket.
	kicked := float64(then.Unix())
	for i, labels := range []string{
		`{"_taskiq_queue_time": ` + jsonFloat(kicked) + `}, "labels_types": {"_taskiq_queue_time": 4}`,
		`{"_taskiq_enqueue_timestamp": "` + then.Format("2006-01-02T15:04:05.000000+00:00") + `"}, "labels_types": {"_taskiq_enqueue_timestamp": 3}`,
	} {
		body := `{"task_id": "py` + string(rune('0'+i)) + `", "task_name": "obs.wait", "labels": ` + labels + `, "args": [], "kwargs": {}}`
		require.NoError(t, b.broker.Kick(context.Background(), []sdk.Outgoing{{TaskID: "py", TaskName: "obs.wait", Body: []byte(body)}}))
	}
	stop := b.runWorker(t, core.WorkerOptions{})
	for _, id := range []string{"py0", "py1"} {
		wait(t, core.ResultOf[int](b.app, id))
	}
	stop()
	m := scrape(t, reg)
	h := m["taskiq_task_wait_seconds"].Metric[0].Histogram
	require.Equal(t, uint64(2), h.GetSampleCount())
	require.Greater(t, h.GetSampleSum(), 2*3600.0, "waited since 2026-01-02")
}

func jsonFloat(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

func spanRecorder() (*tracetest.SpanRecorder, trace.TracerProvider) {
	sr := tracetest.NewSpanRecorder()
	return sr, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
}

func spanNamed(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name()
	}
	t.Fatalf("no span %q among %v", name, names)
	return nil
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

// checkKickAndRun asserts the producer and consumer spans of one task: their
// names, kinds and messaging attributes, and that the run is a child of the
// kick.
func checkKickAndRun(t *testing.T, spans []sdktrace.ReadOnlySpan, taskID, queue string) {
	t.Helper()
	send := spanNamed(t, spans, "send "+queue)
	process := spanNamed(t, spans, "process "+queue)
	require.Equal(t, trace.SpanKindProducer, send.SpanKind())
	require.Equal(t, trace.SpanKindConsumer, process.SpanKind())
	for _, s := range []sdktrace.ReadOnlySpan{send, process} {
		a := attrs(s)
		require.Equal(t, "taskiq", a["messaging.system"].AsString())
		require.Equal(t, taskID, a["messaging.message.id"].AsString())
		require.Equal(t, queue, a["messaging.destination.name"].AsString())
	}
	require.Equal(t, "send", attrs(send)["messaging.operation.type"].AsString())
	require.Equal(t, "process", attrs(process)["messaging.operation.type"].AsString())
	require.Equal(t, send.SpanContext().TraceID(), process.SpanContext().TraceID())
	require.Equal(t, send.SpanContext().SpanID(), process.Parent().SpanID(), "the run is a child of its kick")
	require.True(t, process.Parent().IsRemote())
}

func TestTracingJoinsKickAndRun(t *testing.T) {
	t.Parallel()
	sr, tp := spanRecorder()
	b := setup(t, core.WithTracing(tp))
	var seen *core.Message
	task := core.MustTask[int](b.app, "obs.traced", func(ctx context.Context) (int, error) {
		seen = core.ContextFrom(ctx).Message
		require.True(t, trace.SpanContextFromContext(ctx).IsValid(), "the task runs inside its span")
		return 1, nil
	})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	stop := b.runWorker(t, core.WorkerOptions{})
	wait(t, at)
	stop()
	checkKickAndRun(t, sr.Ended(), at.TaskID, "default")
	// The labels are what Python's propagator reads: W3C traceparent as a
	// string label.
	tp0, ok := seen.LabelString("traceparent")
	require.True(t, ok)
	require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`, tp0)
}

func TestTracingContinuesATraceStartedInPython(t *testing.T) {
	t.Parallel()
	sr, tp := spanRecorder()
	b := setup(t, core.WithTracing(tp))
	core.MustTask[int](b.app, "py.module:traced", func() (int, error) { return 1, nil })
	// taskiq's OpenTelemetryMiddleware calls opentelemetry's inject() on the
	// labels in pre_send (the default propagators: traceparent, tracestate,
	// baggage), then adds _taskiq_queue_time; the labels are then sent as
	// strings with their types, with Python's separators.
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	body := `{"task_id": "from-python", "task_name": "py.module:traced", "labels": {"traceparent": "00-` + traceID + `-` + parentID +
		`-01", "tracestate": "vendor=abc", "baggage": "tenant=acme", "_taskiq_queue_time": "1767323045.5"}, "labels_types": {"traceparent": 3, "tracestate": 3, "baggage": 3, "_taskiq_queue_time": 4}, "args": [], "kwargs": {}}`
	require.NoError(t, b.broker.Kick(context.Background(), []sdk.Outgoing{{TaskID: "from-python", TaskName: "py.module:traced", Body: []byte(body)}}))
	stop := b.runWorker(t, core.WorkerOptions{})
	wait(t, core.ResultOf[int](b.app, "from-python"))
	stop()
	process := spanNamed(t, sr.Ended(), "process default")
	require.Equal(t, traceID, process.SpanContext().TraceID().String())
	require.Equal(t, parentID, process.Parent().SpanID().String())
	require.Equal(t, "vendor=abc", process.SpanContext().TraceState().String())
}

func TestTracingThroughPluginProcesses(t *testing.T) {
	sr, tp := spanRecorder()
	reg := prometheus.NewRegistry()
	pb := loadProc(t, pluginBlock("middleware", "rec", "recorder", `    name = "rec"
    path = "RECORD"`), core.WithTracing(tp), core.WithMetrics(reg))
	task := core.MustTask[int](pb.app, "obs.proc", func() (int, error) { return 7, nil })
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pb.app.RunWorker(ctx, core.WorkerOptions{}) }()
	res, err := at.WaitResult(context.Background(), 20*time.Second)
	require.NoError(t, err)
	v, err := res.Value()
	require.NoError(t, err)
	require.Equal(t, 7, v)
	cancel()
	require.NoError(t, <-done)
	// The message crossed the broker plugin process and the middleware
	// plugin's pre_send, and the trace still joins.
	checkKickAndRun(t, sr.Ended(), at.TaskID, "default")
	m := scrape(t, reg)
	require.Equal(t, 1.0, value(m, "taskiq_tasks_succeeded_total", "task", "obs.proc"))
}

// jsonLines parses JSON log output, one object a line.
func jsonLines(t *testing.T, logs *syncLog) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		out = append(out, m)
	}
	return out
}

func TestTaskLogLinesCarryTaskAndTraceFields(t *testing.T) {
	t.Parallel()
	var logs syncLog
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, JSONFormat: true, Level: hclog.Info})
	sr, tp := spanRecorder()
	b := setup(t, core.WithTracing(tp), core.WithLogger(logger))
	task := core.MustTask[int](b.app, "obs.logs", func(ctx context.Context) (int, error) {
		core.ContextFrom(ctx).Logger().Info("from the task")
		panic("boom")
	})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	stop := b.runWorker(t, core.WorkerOptions{})
	wait(t, at)
	stop()
	process := spanNamed(t, sr.Ended(), "process default")
	var got []string
	for _, l := range jsonLines(t, &logs) {
		msg := l["@message"].(string)
		if msg != "from the task" && msg != "task panicked" {
			continue
		}
		got = append(got, msg)
		require.Equal(t, at.TaskID, l["task_id"], msg)
		require.Equal(t, "obs.logs", l["task_name"], msg)
		require.Equal(t, "default", l["queue"], msg)
		require.Equal(t, 1.0, l["attempt"], msg)
		require.Equal(t, process.SpanContext().TraceID().String(), l["trace_id"], msg)
		require.Equal(t, process.SpanContext().SpanID().String(), l["span_id"], msg)
	}
	require.ElementsMatch(t, []string{"from the task", "task panicked"}, got)
	require.Equal(t, "Error", process.Status().Code.String(), "a failed run's span has an error status")
}

func TestQueueStatsNeedMetrics(t *testing.T) {
	t.Parallel()
	br := inmemory.NewBroker(inmemory.BrokerOptions{})
	t.Cleanup(func() { _ = br.Close(context.Background()) })
	_, err := core.New(core.WithBroker("default", br), core.WithQueueStats(func(context.Context) ([]core.QueueStat, error) { return nil, nil }, 0))
	require.ErrorContains(t, err, "WithQueueStats needs WithMetrics")
}

// TestQueueGaugesFromTheInspector: WithQueueStats(nil, ...) serves the
// depth of every queue as the broker's inspector counts it, read at start
// and then on each interval (the App's clock); scrapes in between serve the
// cached figures.
func TestQueueGaugesFromTheInspector(t *testing.T) {
	t.Parallel()
	br := inmemory.NewBroker(inmemory.BrokerOptions{})
	t.Cleanup(func() { _ = br.Close(context.Background()) })
	reg := prometheus.NewRegistry()
	clk := core.NewFakeClock()
	app, err := core.New(core.WithBroker("default", br, brokerCaps()...), core.WithLogger(hclog.NewNullLogger()),
		core.WithClock(clk), core.WithMetrics(reg), core.WithQueueStats(nil, time.Minute))
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	task := core.MustTask[int](app, "gauge.me", func(context.Context) (int, error) { return 1, nil })

	// refreshes is how many reads were stored: the watcher asks for the
	// next interval once it stored a read.
	refreshes := func() int {
		n := 0
		for _, d := range clk.Afters() {
			if d == time.Minute {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return refreshes() == 1 }, 5*time.Second, time.Millisecond, "the read at start")
	require.Equal(t, 0.0, value(scrape(t, reg), "taskiq_queue_depth", "broker", "default", "queue", "taskiq"))

	for range 3 {
		_, err := task.Kiq(context.Background())
		require.NoError(t, err)
	}
	for range 2 {
		_, err := task.Kicker().WithLabels(map[string]any{"queue_name": "mail"}).Kiq(context.Background())
		require.NoError(t, err)
	}
	fams := scrape(t, reg)
	require.Equal(t, 0.0, value(fams, "taskiq_queue_depth", "broker", "default", "queue", "taskiq"), "a scrape serves the cached figures")
	require.Equal(t, -1.0, value(fams, "taskiq_queue_depth", "broker", "default", "queue", "mail"))

	clk.Advance(time.Minute)
	require.Eventually(t, func() bool { return refreshes() == 2 }, 5*time.Second, time.Millisecond, "the read after one interval")
	fams = scrape(t, reg)
	require.Equal(t, 3.0, value(fams, "taskiq_queue_depth", "broker", "default", "queue", "taskiq"))
	require.Equal(t, 2.0, value(fams, "taskiq_queue_depth", "broker", "default", "queue", "mail"))
	require.GreaterOrEqual(t, value(fams, "taskiq_queue_oldest_age_seconds", "broker", "default", "queue", "mail"), 0.0)
}

// TestTelemetryBlockExportsOverOTLP: tracing = true in taskiq.hcl exports
// the spans of a kick and its run over OTLP/HTTP to otlp_endpoint (here a
// collector stand-in on 127.0.0.1), flushed by App.Close.
func TestTelemetryBlockExportsOverOTLP(t *testing.T) {
	paths := otlpRun(t, "  service_name = \"obs-test\"\n")
	require.Positive(t, paths["/v1/traces"], "spans exported: %v", paths)
	require.Positive(t, paths["/v1/metrics"], "messaging metrics exported: %v", paths)
}

// With sample_ratio = 0 a worker samples no new trace: its collector gets
// the messaging metrics and no span.
func TestTelemetrySampleRatioZeroExportsNoSpans(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	require.NoError(t, os.Unsetenv("OTEL_TRACES_SAMPLER"))
	paths := otlpRun(t, "  sample_ratio = 0\n")
	require.Zero(t, paths["/v1/traces"], "spans exported: %v", paths)
	require.Positive(t, paths["/v1/metrics"], "messaging metrics exported: %v", paths)
}

// otlpRun runs one task in a worker whose telemetry block turns tracing on,
// exports to a collector of the test's and has the extra attributes, and
// returns how many requests the collector got on each path.
func otlpRun(t *testing.T, extra string) map[string]int {
	t.Helper()
	var mu sync.Mutex
	paths := map[string]int{}
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths[r.URL.Path]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	pb := loadProc(t, "telemetry {\n  tracing = true\n  otlp_endpoint = \""+collector.URL+"\"\n"+extra+"}\n")
	task := core.MustTask[int](pb.app, "obs.otlp", func() (int, error) { return 1, nil })
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pb.app.RunWorker(ctx, core.WorkerOptions{}) }()
	_, err = at.WaitResult(context.Background(), 20*time.Second)
	require.NoError(t, err)
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, pb.app.Close(context.Background()))
	mu.Lock()
	defer mu.Unlock()
	return paths
}

// otelPoints collects the data points of one OpenTelemetry metric by their
// attributes (joined "k=v,..." in the set's order): a sum's value or a
// histogram's count.
func otelPoints(t *testing.T, reader *sdkmetric.ManualReader, name string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := map[string]int64{}
	key := func(s attribute.Set) string {
		var parts []string
		for _, kv := range s.ToSlice() {
			parts = append(parts, string(kv.Key)+"="+kv.Value.String())
		}
		return strings.Join(parts, ",")
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[key(p.Attributes)] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[key(p.Attributes)] += int64(p.Count)
				}
			}
		}
	}
	return out
}

// The OpenTelemetry messaging metrics count a known workload: sends, one
// of them refused by a closed broker, deliveries, and processing with the
// error.type of a failed task.
func TestOTelMessagingMetricsCountAKnownWorkload(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	b := setup(t, core.WithMeterProvider(mp))
	ok := core.MustTask[int](b.app, "otel.ok", func(a int) (int, error) { return a, nil })
	fail := core.MustTask[int](b.app, "otel.fail", func(int) (int, error) { return 0, errors.New("boom") })
	ctx := context.Background()
	var tasks []*core.AsyncTask[int]
	for i := 0; i < 4; i++ {
		at, err := ok.Kiq(ctx, i)
		require.NoError(t, err)
		tasks = append(tasks, at)
	}
	for i := 0; i < 2; i++ {
		at, err := fail.Kiq(ctx, i)
		require.NoError(t, err)
		tasks = append(tasks, at)
	}
	stop := b.runWorker(t, core.WorkerOptions{})
	for _, at := range tasks {
		wait(t, at)
	}
	stop()
	require.NoError(t, b.broker.Close(ctx))
	_, err := ok.Kiq(ctx, 9)
	require.Error(t, err)

	const base = "messaging.destination.name=default,messaging.operation.name="
	const sys = ",messaging.system=taskiq"
	send := base + "send,messaging.operation.type=send" + sys
	receive := base + "receive,messaging.operation.type=receive" + sys
	process := base + "process,messaging.operation.type=process" + sys
	require.Equal(t, map[string]int64{send: 6, "error.type=_OTHER," + send: 1}, otelPoints(t, reader, "messaging.client.sent.messages"))
	require.Equal(t, map[string]int64{send: 6, "error.type=_OTHER," + send: 1}, otelPoints(t, reader, "messaging.client.operation.duration"))
	require.Equal(t, map[string]int64{receive: 6}, otelPoints(t, reader, "messaging.client.consumed.messages"))
	require.Equal(t, map[string]int64{process: 4, "error.type=task_failed," + process: 2}, otelPoints(t, reader, "messaging.process.duration"))
}
