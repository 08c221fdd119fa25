package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/taskiq-go/taskiq/core/internal/supervise"

	"github.com/taskiq-go/taskiq/internal/execfile"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// ModuleOption configures LoadModules.
type ModuleOption func(*moduleOptions)

type moduleOptions struct {
	window int
	env    []string
}

// WithModuleWindow bounds the executions outstanding at once on each module
// (default: the App's worker max_async_tasks, else sdk.DefaultTaskWindow).
func WithModuleWindow(n int) ModuleOption { return func(o *moduleOptions) { o.window = n } }

// WithModuleEnv adds KEY=VALUE variables to every module's environment.
// Modules, like every plugin, inherit only PATH, HOME, TMPDIR, LANG, TZ and
// GOCOVERDIR from the host.
func WithModuleEnv(kv ...string) ModuleOption {
	return func(o *moduleOptions) { o.env = append(o.env, kv...) }
}

// LoadModules starts each task-module binary (built with NewModule and
// ServeModule, or sdk.ServeTasks) as a supervised child process, reads the
// tasks it declares and registers each on app, so that a worker of app runs
// them in the module. A module that exits is restarted on the next task;
// the task that was running fails with an error wrapping ErrUnavailable.
//
// Two modules that declare the same task name, or a module task that app
// already has, are an error naming both. On error nothing is left running.
// Closing app stops the modules.
func LoadModules(ctx context.Context, app *App, paths []string, opts ...ModuleOption) error {
	o := moduleOptions{window: app.settings.MaxAsyncTasks}
	for _, opt := range opts {
		opt(&o)
	}
	if o.window <= 0 {
		o.window = sdk.DefaultTaskWindow
	}
	for _, path := range paths {
		if err := checkModule(path); err != nil {
			return err
		}
	}

	mods := make([]*remoteModule, len(paths))
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	for i, path := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mods[i], errs[i] = startModule(ctx, app, path, o)
		}()
	}
	wg.Wait()
	stopAll := func(ctx context.Context) error {
		var errs []error
		for _, m := range mods {
			if m != nil {
				errs = append(errs, m.close(ctx))
			}
		}
		return errors.Join(errs...)
	}
	if err := errors.Join(errs...); err != nil {
		_ = stopAll(ctx)
		return err
	}
	if err := checkTaskNames(app, mods); err != nil {
		_ = stopAll(ctx)
		return err
	}
	for _, m := range mods {
		for _, t := range m.tasks {
			if err := app.registerExecutor(t.Name, t.Labels, m.execute); err != nil {
				_ = stopAll(ctx)
				return fmt.Errorf("task module %s: %w", m.path, err)
			}
		}
		app.plugins = append(app.plugins, m.p)
	}
	app.closers = append(app.closers, stopAll)
	return nil
}

// checkModule explains what is wrong with a task-module binary that is
// missing or cannot be executed, before anything is started.
func checkModule(path string) error {
	return execfile.Explain("task module", path, fmt.Sprintf("build it first (go build -o %s ./path/to/your/module) or fix the path", path))
}

// checkTaskNames reports every task name declared twice, naming both
// places it comes from.
func checkTaskNames(app *App, mods []*remoteModule) error {
	owner := map[string]string{}
	var errs []error
	for _, m := range mods {
		for _, t := range m.tasks {
			if prev, dup := owner[t.Name]; dup {
				errs = append(errs, fmt.Errorf("task %q is declared by two task modules, %s and %s: %w; rename the task in one of them or load only one",
					t.Name, prev, m.path, ErrDuplicateTask))
				continue
			}
			owner[t.Name] = m.path
			if app.task(t.Name) != nil {
				errs = append(errs, fmt.Errorf("task %q of task module %s is also registered in this process: %w; rename one of them",
					t.Name, m.path, ErrDuplicateTask))
			}
		}
	}
	return errors.Join(errs...)
}

// remoteModule is one task-module process under supervision and the
// Execute stream of its current process.
type remoteModule struct {
	app    *App
	path   string
	p      *supervise.Proc
	window int
	tasks  []sdk.TaskInfo

	mu     sync.Mutex
	client *sdk.Client
	tm     sdk.TaskModule
}

func startModule(ctx context.Context, app *App, path string, o moduleOptions) (*remoteModule, error) {
	name := filepath.Base(path)
	p := supervise.New(sdk.KindTasks, name, sdk.LaunchConfig{
		Path:           path,
		Logger:         app.logger.Named("module"),
		Env:            o.env,
		MaxMessageSize: app.maxMessageSize,
	}, json.RawMessage("{}"), app.logger)
	if err := p.Start(ctx); err != nil {
		var ce *supervise.ConfigError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%s is not a task module (built with core.ServeModule or sdk.ServeTasks): %w", path, err)
		}
		return nil, fmt.Errorf("task module %s: %w", path, err)
	}
	c, err := p.Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("task module %s: %w", path, err)
	}
	m := &remoteModule{app: app, path: path, p: p, window: o.window, client: c}
	m.tm = c.Tasks(o.window)
	m.tasks = m.tm.Tasks()
	sort.Slice(m.tasks, func(i, j int) bool { return m.tasks[i].Name < m.tasks[j].Name })
	return m, nil
}

// module returns the Execute stream of a live process, restarting the
// process first when it has exited.
func (m *remoteModule) module(ctx context.Context) (*sdk.Client, sdk.TaskModule, error) {
	c, err := m.p.Get(ctx)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c != m.client {
		if m.tm != nil {
			_ = closeTaskModule(ctx, m.tm)
		}
		m.client, m.tm = c, c.Tasks(m.window)
	}
	return c, m.tm, nil
}

// execute is the executor of every task of the module. A task runs at most
// once per delivery: a module that dies under it fails it (retry middlewares
// may run it again) rather than running it a second time behind the
// worker's back. Only a request that never reached the module is sent again,
// to the restarted module.
func (m *remoteModule) execute(ctx context.Context, msg *wire.Message) (json.RawMessage, error) {
	tc := ContextFrom(ctx)
	call := &sdk.TaskCall{}
	if tc != nil {
		call.Broker, call.DeliveryID, call.Attempt = tc.BrokerName, tc.Delivery.ID, tc.Delivery.Attempt
		if m.unchanged(tc, msg) {
			call.Body = tc.Delivery.Body
		}
	}
	var (
		ret json.RawMessage
		err error
	)
	for try := 0; try < 2; try++ {
		var (
			c  *sdk.Client
			tm sdk.TaskModule
		)
		if c, tm, err = m.module(ctx); err != nil {
			return nil, fmt.Errorf("task module %s: %w", m.path, err)
		}
		ret, err = tm.Execute(sdk.WithTaskCall(ctx, call), msg)
		if !errors.Is(err, sdk.ErrUnavailable) || !supervise.Died(c, err) {
			break
		}
		// The process is gone; the next call restarts it.
		if !errors.Is(err, sdk.ErrNotDelivered) {
			break
		}
	}
	if call.Acked() && tc != nil {
		_ = tc.Ack()
	}
	switch {
	case err == nil:
		return ret, nil
	case errors.Is(err, sdk.ErrRequeue) && tc != nil:
		return nil, tc.Requeue()
	case errors.Is(err, sdk.ErrReject) && tc != nil:
		return nil, tc.Reject()
	case errors.Is(err, sdk.ErrBadArguments):
		return nil, &ArgumentError{Task: msg.TaskName, Msg: argumentMessage(msg.TaskName, err)}
	case errors.Is(err, sdk.ErrNotDelivered):
		return nil, fmt.Errorf("task module %s is not running and could not be restarted: %w", m.path, err)
	case errors.Is(err, sdk.ErrUnavailable):
		return nil, fmt.Errorf("task module %s exited while running the task (it is restarted for the next one): %w", m.path, err)
	}
	return nil, err
}

// unchanged reports whether msg is still exactly what the worker decoded
// from the delivery's body, so that the body can cross to the module as the
// broker delivered it: no pre_execute middleware ran, which is the only
// place the worker lets the message change before the task.
func (m *remoteModule) unchanged(tc *Context, msg *wire.Message) bool {
	return tc.Message == msg && len(tc.Delivery.Body) > 0 && len(m.app.chain.preExecs) == 0
}

// argumentMessage is the module's text for bad arguments without the task
// prefix ArgumentError adds again.
func argumentMessage(task string, err error) string {
	msg := err.Error()
	if we := (*wire.Error)(nil); errors.As(err, &we) {
		msg = we.Error()
	}
	msg = strings.TrimPrefix(msg, "TypeError: ")
	return strings.TrimPrefix(msg, fmt.Sprintf("task %q: ", task))
}

func (m *remoteModule) close(ctx context.Context) error {
	m.mu.Lock()
	if m.tm != nil {
		_ = closeTaskModule(ctx, m.tm)
		m.tm = nil
	}
	m.mu.Unlock()
	return m.p.Close(ctx)
}

func closeTaskModule(ctx context.Context, tm sdk.TaskModule) error {
	if c, ok := tm.(interface{ Close(context.Context) error }); ok {
		return c.Close(ctx)
	}
	return nil
}

// Is makes an ArgumentError match sdk.ErrBadArguments: that is how a task
// module (moduleTasks.Execute runs the same argument decoding) tells the
// worker its arguments do not fit, so that the worker dead-letters the
// message.
func (e *ArgumentError) Is(target error) bool { return target == sdk.ErrBadArguments }
