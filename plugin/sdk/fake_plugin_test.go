package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq/internal/leaktest"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// envFakeMode makes the test binary act as something other than the fake
// plugin: a plugin of another protocol version, the fake plugin as one
// built with the first release of protocol v1 serves it, a plugin that crashes at
// start, or an intermediate host (for the orphan test).
const envFakeMode = "TASKIQ_SDKTEST_FAKE"

func TestMain(m *testing.M) {
	switch os.Getenv(envFakeMode) {
	case "v2":
		serveOtherProtocol()
		os.Exit(0)
	case "baseline":
		sdk.ServeBaselineV1(fakePlugin())
		os.Exit(0)
	case "crash":
		fmt.Fprintln(os.Stderr, "fake plugin: cannot read /nonexistent/plugin.conf: boom at start")
		os.Exit(3)
	case "host":
		runIntermediateHost()
		os.Exit(0)
	}
	serveTasksIfRequested()
	sdktest.RunPluginIfRequested(fakePlugin())
	os.Exit(leaktest.Code(m.Run()))
}

// fakePlugin serves all three roles with in-memory implementations.
func fakePlugin() sdk.Plugin {
	return sdk.Plugin{
		Name:    "taskiq-fake",
		Version: "1.2.3",
		Broker: &sdk.Factory[sdk.Broker]{
			Capabilities: []string{sdk.CapAckable, sdk.CapDeadLetter},
			Schema: sdk.Schema{Attributes: []sdk.Attribute{
				{Name: "queue", Type: sdk.TypeString, Required: true, Description: "queue to use"},
				{Name: "stats_file", Type: sdk.TypeString, Description: "where the broker writes its counters"},
				{Name: "max_outstanding", Type: sdk.TypeNumber, Default: 0, Description: "fail Recv calls that could exceed this many unsettled deliveries"},
				{Name: "password", Type: sdk.TypeString, Sensitive: true},
				{Name: "storage", Type: sdk.TypeString, Default: "memory", Allowed: []string{"memory", "file"}},
				{Name: "replicas", Type: sdk.TypeNumber, Default: 1, Integer: true, Min: sdk.Num(1), Max: sdk.Num(5)},
				{Name: "max_message_size", Type: sdk.TypeNumber, Default: 0, Integer: true, Min: sdk.Num(0),
					Description: "the broker's own message size limit; 0: none"},
				{Name: "stable_ids", Type: sdk.TypeBool, Default: false, Description: "declare stable_ids"},
				{Name: "hang_reason", Type: sdk.TypeString, Default: "", Description: "a settlement with this reason blocks Settle forever, as a process dying before it applied it"},
			}},
			New:   newMemBroker,
			Check: checkMemBroker,
			// A limit of its own, below the host's 16 MiB; max_message_size
			// lowers it further (MessageSizeLimiter).
			MaxMessageSize: fakeBrokerMaxSize,
		},
		ResultBackend: &sdk.Factory[sdk.ResultBackend]{
			Capabilities: []string{sdk.CapWait, sdk.CapProgress},
			Schema: sdk.Schema{Attributes: []sdk.Attribute{
				{Name: "ttl", Type: sdk.TypeDuration, Default: "1h"},
				{Name: "no_wait", Type: sdk.TypeBool, Default: false},
				{Name: "tags", Type: sdk.TypeStringList, Default: []string{"a", "b"}},
				{Name: "limit", Type: sdk.TypeNumber, Default: 3},
			}},
			New: newMemResults,
		},
		Middleware: &sdk.Factory[sdk.Middleware]{New: newMemMiddleware},
	}
}

// ---- broker ----

// fakeBrokerMaxSize is the fake broker's Factory.MaxMessageSize.
const fakeBrokerMaxSize = 4 << 20

type brokerConfig struct {
	Queue          string `json:"queue"`
	StatsFile      string `json:"stats_file"`
	MaxOutstanding int    `json:"max_outstanding"`
	MaxMessageSize int    `json:"max_message_size"`
	StableIDs      bool   `json:"stable_ids"`
	HangReason     string `json:"hang_reason"`
}

// Capabilities adds stable_ids when configured (sdk.Capable).
func (b *memBroker) Capabilities() []string {
	caps := []string{sdk.CapAckable, sdk.CapDeadLetter}
	if b.cfg.StableIDs {
		caps = append(caps, sdk.CapStableIDs)
	}
	return caps
}

// brokerStats are the fake broker's counters, written to stats_file so the
// test process can see inside the plugin process.
type brokerStats struct {
	Kicked         int      `json:"kicked"`
	Handed         int      `json:"handed"`
	Acked          int      `json:"acked"`
	Nacked         int      `json:"nacked"`
	DeadLettered   int      `json:"dead_lettered"`
	Extended       int      `json:"extended"`
	Outstanding    int      `json:"outstanding"`
	MaxOutstanding int      `json:"max_outstanding"`
	Reasons        []string `json:"reasons"`
	StreamsClosed  int      `json:"streams_closed"`
}

type memMsg struct {
	id      string
	body    []byte
	queue   string
	attempt int
	stream  *memStream
}

type memBroker struct {
	cfg    brokerConfig
	logger hclog.Logger

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever the queue grows
	queue   []*memMsg
	out     map[string]*memMsg
	nextID  int
	stats   brokerStats
	closed  bool
}

// decodeMemBroker decodes and checks the broker's config: what New and
// Check share.
func decodeMemBroker(cfg sdk.Config) (brokerConfig, error) {
	var c brokerConfig
	if err := cfg.Decode(&c); err != nil {
		return c, err
	}
	var errs []error
	if c.Queue == "" {
		errs = append(errs, sdk.AttrError("queue", "is required: name the queue to use"))
	}
	if c.MaxOutstanding < 0 {
		errs = append(errs, sdk.AttrError("max_outstanding", "must not be negative, got %d", c.MaxOutstanding))
	}
	return c, errors.Join(errs...)
}

func checkMemBroker(_ context.Context, cfg sdk.Config) error {
	_, err := decodeMemBroker(cfg)
	return err
}

func newMemBroker(_ context.Context, cfg sdk.Config) (sdk.Broker, error) {
	c, err := decodeMemBroker(cfg)
	if err != nil {
		return nil, err
	}
	cfg.Logger.Info("fake broker configured", "queue", c.Queue, "max_message_size", cfg.MaxMessageSize, "ratio", 0.5)
	b := &memBroker{cfg: c, logger: cfg.Logger, changed: make(chan struct{}), out: map[string]*memMsg{}}
	b.writeStats()
	return b, nil
}

// writeStats writes the counters; callers hold mu (or own b exclusively).
func (b *memBroker) writeStats() {
	if b.cfg.StatsFile == "" {
		return
	}
	data, _ := json.Marshal(b.stats)
	tmp := b.cfg.StatsFile + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err == nil {
		_ = os.Rename(tmp, b.cfg.StatsFile)
	}
}

func (b *memBroker) Kick(_ context.Context, msgs []sdk.Outgoing) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return sdk.ErrClosed
	}
	for _, m := range msgs {
		b.nextID++
		b.queue = append(b.queue, &memMsg{id: strconv.Itoa(b.nextID), body: m.Body, queue: m.Queue, attempt: 1})
	}
	b.stats.Kicked += len(msgs)
	b.writeStats()
	close(b.changed)
	b.changed = make(chan struct{})
	return nil
}

func (b *memBroker) Listen(_ context.Context, req sdk.ListenRequest) (sdk.Stream, error) {
	for _, q := range req.Queues {
		if q.Name == "forbidden" {
			return nil, fmt.Errorf("queue %q: %w", q.Name, sdk.ErrUnsupported)
		}
	}
	return &memStream{b: b}, nil
}

// MaxMessageSize is the broker's own limit, from max_message_size.
func (b *memBroker) MaxMessageSize() int { return b.cfg.MaxMessageSize }

func (b *memBroker) Close(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	close(b.changed)
	b.changed = make(chan struct{})
	return nil
}

type memStream struct {
	b      *memBroker
	closed bool // guarded by b.mu
}

func (s *memStream) Recv(ctx context.Context, limit int) ([]sdk.Delivery, error) {
	b := s.b
	for {
		b.mu.Lock()
		if s.closed || b.closed {
			b.mu.Unlock()
			return nil, sdk.ErrClosed
		}
		if lim := b.cfg.MaxOutstanding; lim > 0 && b.stats.Outstanding+limit > lim {
			err := fmt.Errorf("credit violation: asked for %d deliveries with %d outstanding, limit %d", limit, b.stats.Outstanding, lim)
			b.mu.Unlock()
			return nil, err
		}
		if len(b.queue) > 0 {
			n := min(limit, len(b.queue))
			ds := make([]sdk.Delivery, n)
			for i, m := range b.queue[:n] {
				m.stream = s
				b.out[m.id] = m
				ds[i] = sdk.Delivery{ID: m.id, Body: m.body, Queue: m.queue, Attempt: m.attempt}
			}
			b.queue = b.queue[n:]
			b.stats.Handed += n
			b.stats.Outstanding += n
			b.stats.MaxOutstanding = max(b.stats.MaxOutstanding, b.stats.Outstanding)
			b.writeStats()
			b.mu.Unlock()
			return ds, nil
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *memStream) Settle(ctx context.Context, ss []sdk.Settlement) error {
	b := s.b
	for _, x := range ss {
		if b.cfg.HangReason != "" && x.Reason == b.cfg.HangReason {
			<-ctx.Done()
			return ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.writeStats()
	var errs []error
	for _, x := range ss {
		m, ok := b.out[x.DeliveryID]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown delivery %q", x.DeliveryID))
			continue
		}
		if x.Kind == sdk.SettleExtend {
			b.stats.Extended++
			continue
		}
		delete(b.out, x.DeliveryID)
		b.stats.Outstanding--
		switch x.Kind {
		case sdk.SettleAck:
			b.stats.Acked++
		case sdk.SettleNack:
			b.stats.Nacked++
			m.attempt++
			b.queue = append(b.queue, m)
			close(b.changed)
			b.changed = make(chan struct{})
		case sdk.SettleDeadLetter:
			b.stats.DeadLettered++
			b.stats.Reasons = append(b.stats.Reasons, x.Reason)
		}
	}
	return errors.Join(errs...)
}

// Close puts this stream's unsettled deliveries back in the queue.
func (s *memStream) Close() error {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for id, m := range b.out {
		if m.stream == s {
			delete(b.out, id)
			b.stats.Outstanding--
			b.queue = append(b.queue, m)
		}
	}
	b.stats.StreamsClosed++
	b.writeStats()
	close(b.changed)
	b.changed = make(chan struct{})
	return nil
}

// ---- result backend ----

type resultsConfig struct {
	TTL    time.Duration     `json:"ttl"`
	NoWait bool              `json:"no_wait"`
	Tags   []string          `json:"tags"`
	Limit  int               `json:"limit"`
	Labels map[string]string `json:"labels"`
}

// configResultID is a task id whose result is the backend's decoded config,
// so a test sees what New received.
const configResultID = "__config__"

type memResults struct {
	mu       sync.Mutex
	changed  chan struct{}
	results  map[string][]byte
	progress map[string][]byte
}

// waitingResults adds ResultWaiter to memResults.
type waitingResults struct{ *memResults }

func newMemResults(_ context.Context, cfg sdk.Config) (sdk.ResultBackend, error) {
	var c resultsConfig
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	if c.TTL <= 0 {
		return nil, sdk.AttrError("ttl", "must be positive, got %s", c.TTL)
	}
	r := &memResults{changed: make(chan struct{}), results: map[string][]byte{}, progress: map[string][]byte{}}
	r.results[configResultID], _ = json.Marshal(c)
	if c.NoWait {
		return r, nil
	}
	return waitingResults{r}, nil
}

func (r *memResults) SetResults(_ context.Context, rs []sdk.StoredResult) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range rs {
		r.results[x.TaskID] = x.Body
	}
	close(r.changed)
	r.changed = make(chan struct{})
	return nil
}

func (r *memResults) GetResult(_ context.Context, id string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.results[id]
	if !ok {
		return nil, sdk.ErrNotFound
	}
	return b, nil
}

func (r *memResults) IsReady(_ context.Context, id string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.results[id]
	return ok, nil
}

func (r *memResults) SetProgress(_ context.Context, id string, p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progress[id] = p
	return nil
}

func (r *memResults) GetProgress(_ context.Context, id string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.progress[id]
	if !ok {
		return nil, sdk.ErrNotFound
	}
	return b, nil
}

func (r *memResults) Close(context.Context) error { return nil }

func (w waitingResults) WaitResult(ctx context.Context, id string) ([]byte, error) {
	for {
		w.mu.Lock()
		b, ok := w.results[id]
		changed := w.changed
		w.mu.Unlock()
		if ok {
			return b, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// ---- middleware ----

// memMiddleware implements pre_send, on_error and post_execute; its hooks
// are detected by the SDK (Plugin.Hooks is empty).
type memMiddleware struct {
	host   sdk.Host
	logger hclog.Logger
}

// typoMiddleware's "misspelled" shape: a config {"misspelled": true} builds a
// middleware whose PreExecute is spelled PreExcute.
func newMemMiddleware(_ context.Context, cfg sdk.Config) (sdk.Middleware, error) {
	var c struct {
		Misspelled bool `json:"misspelled"`
		Trail      bool `json:"trail"`
	}
	if len(cfg.Raw) > 0 {
		if err := json.Unmarshal(cfg.Raw, &c); err != nil {
			return nil, err
		}
	}
	if c.Misspelled {
		return typoMiddleware{}, nil
	}
	if c.Trail {
		return trailMiddleware{}, nil
	}
	cfg.Logger.Debug("mw debug line")
	cfg.Logger.Info("mw info line", "instance_seen", cfg.Name)
	cfg.Logger.Warn("mw warn line")
	return &memMiddleware{host: cfg.Host, logger: cfg.Logger}, nil
}

func (m *memMiddleware) PreSend(ctx context.Context, msg *wire.Message) error {
	msg.SetLabel("seen_by", "fake-mw")
	if msg.TaskName != "callback" {
		return nil
	}
	if m.host == nil {
		return errors.New("no host to call back")
	}
	cb := &wire.Message{TaskID: msg.TaskID + "-cb", TaskName: "from-plugin", Labels: map[string]any{"origin": "plugin"}}
	if err := m.host.Kick(ctx, "default", []*wire.Message{cb}); err != nil {
		return fmt.Errorf("host kick: %w", err)
	}
	res, err := m.host.GetResult(ctx, "known")
	if err != nil {
		return fmt.Errorf("host get result: %w", err)
	}
	msg.SetLabel("host_result", string(res.ReturnValue))
	if _, err := m.host.GetResult(ctx, "unknown"); !errors.Is(err, sdk.ErrNotFound) {
		return fmt.Errorf("host get result of an unknown task: want ErrNotFound, got %v", err)
	}
	caps, err := m.host.BrokerCapabilities(ctx, "default")
	if err != nil {
		return fmt.Errorf("host broker capabilities: %w", err)
	}
	msg.SetLabel("host_caps", strings.Join(caps, ","))
	return nil
}

func (m *memMiddleware) OnError(_ context.Context, _ *wire.Message, res *wire.Result, err error) error {
	switch {
	case err == nil:
		return errors.New("on_error called without an error")
	case strings.Contains(err.Error(), "retry"):
		return sdk.ErrNoResult
	case strings.Contains(err.Error(), "fatal"):
		return sdk.DeadLetter("gave up: " + err.Error())
	case strings.Contains(err.Error(), "complain"):
		return errors.New("on_error complaint")
	}
	if res.Labels == nil {
		res.Labels = map[string]any{}
	}
	res.Labels["seen_error"] = err.Error()
	return nil
}

func (m *memMiddleware) PostExecute(_ context.Context, _ *wire.Message, res *wire.Result) error {
	res.ReturnValue = json.RawMessage(`"changed by plugin"`)
	return nil
}

// trailMiddleware's hooks (config {"trail": true}) record themselves in a
// "trail" label, so a test sees in which order a task's hooks ran. Task
// names ask for more: "fail" makes each hook fail naming the task id,
// "args" makes pre_execute change the args (a whole message goes back),
// and "drop" makes pre_execute delete the label "drop". post_send changes
// nothing.
type trailMiddleware struct{}

func trailErr(msg *wire.Message, hook string) error {
	if msg.TaskName == "fail" {
		return fmt.Errorf("%s failed for %s", hook, msg.TaskID)
	}
	return nil
}

func (trailMiddleware) PreSend(_ context.Context, msg *wire.Message) error {
	trail, _ := msg.LabelString("trail")
	msg.SetLabel("trail", trail+"/pre_send")
	return trailErr(msg, "pre_send")
}

func (trailMiddleware) PostSend(_ context.Context, msg *wire.Message) error {
	return trailErr(msg, "post_send")
}

func (trailMiddleware) PreExecute(_ context.Context, msg *wire.Message) error {
	trail, _ := msg.LabelString("trail")
	msg.SetLabel("trail", trail+"/pre_execute")
	switch msg.TaskName {
	case "args":
		msg.Args = append(msg.Args, json.RawMessage(`"added"`))
	case "drop":
		delete(msg.Labels, "drop")
	}
	return trailErr(msg, "pre_execute")
}

func (trailMiddleware) PostExecute(_ context.Context, msg *wire.Message, res *wire.Result) error {
	trail, _ := msg.LabelString("trail")
	if res.Labels == nil {
		res.Labels = map[string]any{}
	}
	res.Labels["trail"] = trail + "/post_execute"
	res.Labels["calls"] = float64(3)
	return trailErr(msg, "post_execute")
}

// ---- host ----

type kickCall struct {
	broker string
	msgs   []*wire.Message
}

// fakeHost is the Host the test serves to a middleware plugin.
type fakeHost struct{ kicks chan kickCall }

func (h *fakeHost) Kick(_ context.Context, broker string, msgs []*wire.Message) error {
	h.kicks <- kickCall{broker: broker, msgs: msgs}
	return nil
}

func (h *fakeHost) GetResult(_ context.Context, id string) (*wire.Result, error) {
	if id == "known" {
		return &wire.Result{ReturnValue: json.RawMessage(`42`)}, nil
	}
	return nil, sdk.ErrNotFound
}

func (h *fakeHost) BrokerCapabilities(context.Context, string) ([]string, error) {
	return []string{sdk.CapDelay, sdk.CapPriority}, nil
}

// ---- other processes ----

// serveOtherProtocol is a plugin speaking protocol version 2, which this
// SDK does not know.
func serveOtherProtocol() {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: goplugin.HandshakeConfig{MagicCookieKey: sdk.MagicCookieKey, MagicCookieValue: sdk.MagicCookieValue},
		VersionedPlugins: map[int]goplugin.PluginSet{
			2: {"taskiq": &futurePlugin{}},
		},
		GRPCServer: goplugin.DefaultGRPCServer,
	})
}

type futurePlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (futurePlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error { return nil }
func (futurePlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("not a client")
}

// runIntermediateHost launches the fake plugin, prints its pid and waits to
// be killed: the orphan test kills it with SIGKILL and watches the plugin.
func runIntermediateHost() {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := sdk.Launch(ctx, sdk.LaunchConfig{
		Path:   exe,
		Env:    []string{sdktest.EnvPlugin + "=1", sdk.EnvLogLevel + "=debug"},
		Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Debug}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if diags, err := c.Configure(ctx, sdk.KindBroker, "orphan", json.RawMessage(`{"queue":"q"}`)); err != nil || len(diags) > 0 {
		fmt.Fprintln(os.Stderr, "configure:", err, diags)
		os.Exit(1)
	}
	fmt.Println(c.Pid())
	time.Sleep(time.Hour) // until the test kills this process
}
