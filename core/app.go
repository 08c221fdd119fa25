package core

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq/core/internal/supervise"
	"github.com/taskiq-go/taskiq/core/internal/telemetry"

	"github.com/hashicorp/go-hclog"

	"github.com/taskiq-go/taskiq/internal/coalesce"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Sentinel errors callers branch on.
var (
	// ErrUnknownBroker is returned when a kicker names a broker the App lacks.
	ErrUnknownBroker = errors.New("unknown broker")
	// ErrBadArguments is returned by Kiq when arguments do not fit the task.
	ErrBadArguments = errors.New("arguments do not match the task")
	// ErrDuplicateTask is returned when a task name is registered twice.
	ErrDuplicateTask = errors.New("task name already registered")
	// ErrMaybeSent is wrapped by a kick error from the broker: the kick
	// failed, yet the message may have been enqueued and its task may run.
	// Concurrent kicks reach the broker in one batch, and a batch that fails
	// part way can have landed in part; every kick of it gets the error.
	// Errors found before sending (bad arguments, a message over the size
	// limit, an unknown broker) do not wrap it: nothing was sent.
	ErrMaybeSent = errors.New("the message may have been enqueued anyway")
)

// App ties together brokers, a result backend, middlewares, tasks and state.
// It is safe for concurrent use.
type App struct {
	logger         hclog.Logger
	brokers        map[string]*brokerEntry
	defaultBroker  string
	results        sdk.ResultBackend
	resultCaps     []string
	resultWriter   *coalesce.Coalescer[sdk.StoredResult]
	chain          *chain
	maxMessageSize int
	state          *State
	closers        []func(context.Context) error
	plugins        []*supervise.Proc // started by Load and LoadModules
	settings       WorkerOptions
	// moduleName is the name given to NewModule ("" for other Apps).
	moduleName string
	// explicit records which settings an option set, so that Load lets the
	// caller's options win over taskiq.hcl.
	explicit struct{ defaultBroker, maxMessageSize, workerDefaults bool }
	clock    clock
	// sched holds what the scheduler reads: schedules and sources.
	sched scheduling

	// Observability (telemetry.go): the options collected, and the
	// Recorder built from them (nil when all are off).
	telOpts         telemetry.Options
	tel             *telemetry.Recorder
	queueStats      QueueStatsFunc
	queueStatsEvery time.Duration

	mu        sync.RWMutex
	tasks     map[string]*taskDef
	providers map[providerKey]provider
	events    map[Event][]EventHandler
	started   bool
}

type brokerEntry struct {
	name   string
	broker sdk.Broker
	caps   []string
	kicks  *kickLanes
	// maxSize is the broker's own message size limit (sdk.MessageSizeLimiter),
	// 0 when it declares none.
	maxSize int
	// insp and canc are the broker's inspection and cancellation roles;
	// nil when it has none (control.go).
	insp Inspector
	canc sdk.Canceller
}

// Option configures an App built with New.
type Option func(*App) error

// WithBroker adds a broker under name with the capabilities it declares. The
// first broker added is the default one unless WithDefaultBroker says otherwise.
func WithBroker(name string, b Broker, capabilities ...string) Option {
	return func(a *App) error { return a.addBroker(name, b, capabilities) }
}

func (a *App) addBroker(name string, b Broker, capabilities []string) error {
	if _, dup := a.brokers[name]; dup {
		return fmt.Errorf("broker %q added twice", name)
	}
	e := &brokerEntry{name: name, broker: b, caps: capabilities}
	if l, ok := b.(sdk.MessageSizeLimiter); ok {
		e.maxSize = l.MaxMessageSize()
	}
	// The inspection roles of an in-process broker are used when it
	// declares them, as a plugin's are.
	if in, ok := b.(Inspector); ok && sdk.Has(capabilities, sdk.CapInspect) {
		e.insp = in
	}
	if c, ok := b.(sdk.Canceller); ok && sdk.Has(capabilities, sdk.CapCancel) {
		e.canc = c
	}
	e.kicks = newKickLanes(kickLaneCount, kickBatch, b.Kick)
	a.brokers[name] = e
	if a.defaultBroker == "" {
		a.defaultBroker = name
	}
	return nil
}

// WithDefaultBroker chooses the broker used when a kicker names none.
func WithDefaultBroker(name string) Option {
	return func(a *App) error { a.defaultBroker, a.explicit.defaultBroker = name, true; return nil }
}

// WithResultBackend sets the result backend. Without one, results are not
// stored (taskiq's dummy backend) and reading one returns ErrNoResultBackend.
func WithResultBackend(rb ResultBackend, capabilities ...string) Option {
	return func(a *App) error { a.results = rb; a.resultCaps = capabilities; return nil }
}

// WithMiddleware appends middlewares; their order is the hook order. A value
// that implements no hook, or has a method that looks like a misspelled
// hook, makes New fail (see sdk.CheckMiddleware): such a hook would never
// run.
func WithMiddleware(mws ...Middleware) Option {
	return func(a *App) error {
		for i, mw := range mws {
			if err := sdk.CheckMiddleware(mw); err != nil {
				return fmt.Errorf("taskiq: WithMiddleware: middleware %d of %d: %w", i+1, len(mws), err)
			}
		}
		a.chain.add(mws...)
		return nil
	}
}

// WithLogger sets the logger (default: hclog's default logger named "taskiq").
func WithLogger(l hclog.Logger) Option {
	return func(a *App) error { a.logger = l; return nil }
}

// WithMaxMessageSize bounds the size of a message body in bytes.
func WithMaxMessageSize(n int) Option {
	return func(a *App) error { a.maxMessageSize, a.explicit.maxMessageSize = n, true; return nil }
}

// WithWorkerDefaults sets the options RunWorker uses for the fields its
// caller leaves zero (Load fills them from the worker block of taskiq.hcl).
func WithWorkerDefaults(o WorkerOptions) Option {
	return func(a *App) error { a.settings, a.explicit.workerDefaults = o, true; return nil }
}

// New builds an App in process. At least one broker is required.
func New(opts ...Option) (*App, error) {
	a := newApp()
	if err := a.apply(opts); err != nil {
		return nil, err
	}
	if err := a.checkBrokers(); err != nil {
		return nil, err
	}
	a.finish()
	if err := a.startTelemetry(); err != nil {
		return nil, err
	}
	return a, nil
}

// apply runs opts on a, once, in order.
func (a *App) apply(opts []Option) error {
	for _, o := range opts {
		if err := o(a); err != nil {
			return err
		}
	}
	return nil
}

func (a *App) checkBrokers() error {
	if len(a.brokers) == 0 {
		return errors.New("taskiq: an App needs at least one broker (WithBroker, or a broker block in taskiq.hcl)")
	}
	if _, ok := a.brokers[a.defaultBroker]; !ok {
		return fmt.Errorf("taskiq: default broker %q: %w", a.defaultBroker, ErrUnknownBroker)
	}
	return nil
}

// finish completes the set-up New, NewModule and Load share once the
// options are applied: the defaults of what no option set, the result
// writer and the middleware chain.
func (a *App) finish() {
	if a.logger == nil {
		a.logger = defaultLogger()
	}
	if a.results == nil {
		a.results = dummyResults{}
	}
	a.resultWriter = coalesce.New(256, a.results.SetResults)
	a.chain.build()
}

func defaultLogger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "taskiq", Level: hclog.Info})
}

func newApp() *App {
	return &App{
		brokers:        map[string]*brokerEntry{},
		chain:          &chain{},
		maxMessageSize: sdk.DefaultMaxMessageSize,
		state:          newState(),
		tasks:          map[string]*taskDef{},
		providers:      map[providerKey]provider{},
		events:         map[Event][]EventHandler{},
		clock:          realClock{},
	}
}

// Logger returns the App's logger.
func (a *App) Logger() hclog.Logger { return a.logger }

// State returns the state shared by event handlers, dependencies and tasks.
func (a *App) State() *State { return a.state }

// BrokerNames lists the configured brokers, sorted.
func (a *App) BrokerNames() []string {
	names := make([]string, 0, len(a.brokers))
	for n := range a.brokers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BrokerCapabilities lists a broker's capabilities ("" = default broker).
func (a *App) BrokerCapabilities(name string) ([]string, error) {
	e, err := a.broker(name)
	if err != nil {
		return nil, err
	}
	return e.caps, nil
}

// WorkerDefaults returns the worker options from configuration.
func (a *App) WorkerDefaults() WorkerOptions { return a.settings }

func (a *App) broker(name string) (*brokerEntry, error) {
	if name == "" {
		name = a.defaultBroker
	}
	e, ok := a.brokers[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (configured: %v)", ErrUnknownBroker, name, a.BrokerNames())
	}
	return e, nil
}

// Start fires the client startup event once. Kicking works without it; call
// it when client startup handlers prepare state.
func (a *App) Start(ctx context.Context) error {
	a.mu.Lock()
	if a.started {
		a.mu.Unlock()
		return nil
	}
	a.started = true
	a.mu.Unlock()
	return a.fire(ctx, EventClientStartup)
}

// Close fires the client shutdown event (when Start ran), then closes the
// brokers, the result backend and whatever Load started. It returns once
// the goroutines the App started have ended (a worker's are RunWorker's).
func (a *App) Close(ctx context.Context) error {
	var errs []error
	a.mu.Lock()
	started := a.started
	a.started = false
	a.mu.Unlock()
	if started {
		errs = append(errs, a.fire(ctx, EventClientShutdown))
	}
	// The coalescers flush what is queued and end their goroutines first,
	// so that Close returns with nothing it started still running.
	for _, e := range a.brokers {
		e.kicks.Close()
		errs = append(errs, e.broker.Close(ctx))
	}
	a.resultWriter.Close()
	errs = append(errs, a.results.Close(ctx))
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i](ctx))
	}
	return errors.Join(errs...)
}
