package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// EnvWork is the variable through which Run tells a benchmark task module
// (Options.Module) what each task does, in ParseWork's syntax.
const EnvWork = "TASKIQ_BENCH_WORK"

// EnvModuleCPUProfile, set in the environment of `taskiq bench --module`,
// is passed on to the module, which then writes a CPU profile of itself to
// that path from its start to its shutdown.
const EnvModuleCPUProfile = "TASKIQ_BENCH_MODULE_CPUPROFILE"

// moduleEnv is the environment a benchmark run gives its task module.
func moduleEnv(w Work) []string {
	env := []string{EnvWork + "=" + w.String()}
	if p := os.Getenv(EnvModuleCPUProfile); p != "" {
		env = append(env, EnvModuleCPUProfile+"="+p)
	}
	return env
}

// profileModule starts the CPU profile EnvModuleCPUProfile asks for and
// stops it at the worker shutdown event.
func profileModule(app *core.App) error {
	path := os.Getenv(EnvModuleCPUProfile)
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("%s: %w", EnvModuleCPUProfile, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", EnvModuleCPUProfile, err)
	}
	app.OnEvent(core.EventWorkerShutdown, func(context.Context, *core.State) error {
		pprof.StopCPUProfile()
		return f.Close()
	})
	return nil
}

// RegisterModuleTask registers the benchmark task on the App of a task
// module (core.NewModule), for Options.Module: the task does the work that
// EnvWork names (noop when unset) and returns when it started and ended, as
// Unix nanoseconds [start, end], so that the host can measure the run.
func RegisterModuleTask(app *core.App) error {
	spec := os.Getenv(EnvWork)
	if spec == "" {
		spec = "noop"
	}
	w, err := ParseWork(spec)
	if err != nil {
		return fmt.Errorf("%s: %w", EnvWork, err)
	}
	if err := profileModule(app); err != nil {
		return err
	}
	_, err = core.NewTask[[2]int64](app, TaskName, func(ctx context.Context, _, _ int64, _ string) ([2]int64, error) {
		start := time.Now().UnixNano()
		w.do(ctx)
		return [2]int64{start, time.Now().UnixNano()}, nil
	}, core.WithParamNames("idx", "at", "payload"))
	return err
}

// moduleClock is the host side of a run whose task lives in a task module:
// a post_execute middleware that reads the start and end the module task
// returned and accounts for the execution as the in-process task does.
type moduleClock struct{ r *run }

func (c moduleClock) PostExecute(_ context.Context, msg *wire.Message, res *wire.Result) error {
	if msg.TaskName != TaskName || len(msg.Args) < 2 || res == nil || res.IsErr {
		return nil
	}
	idx, err1 := strconv.ParseInt(string(msg.Args[0]), 10, 64)
	at, err2 := strconv.ParseInt(string(msg.Args[1]), 10, 64)
	span, err3 := moduleSpan(res.ReturnValue)
	if err1 != nil || err2 != nil || err3 != nil {
		c.r.fail(fmt.Errorf("benchmark task module returned %s for args %s: not the benchmark task's [start, end]", res.ReturnValue, msg.Args))
		return nil
	}
	c.r.record(idx, at, c.r.sinceUnix(span[0]), c.r.sinceUnix(span[1]))
	return nil
}

// moduleSpan reads the [start, end] a module task returns. The module
// encodes it as encoding/json does, "[start,end]"; that form is read by hand,
// since a run reads one per task in the host it measures (anything else
// goes through encoding/json).
func moduleSpan(ret json.RawMessage) ([2]int64, error) {
	var span [2]int64
	if s := string(ret); len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, b, ok := strings.Cut(s[1:len(s)-1], ","); ok {
			x, err1 := strconv.ParseInt(a, 10, 64)
			y, err2 := strconv.ParseInt(b, 10, 64)
			if err1 == nil && err2 == nil {
				return [2]int64{x, y}, nil
			}
		}
	}
	err := json.Unmarshal(ret, &span)
	return span, err
}

// sinceUnix converts Unix nanoseconds (another process's clock on this
// machine) to time since the run's base.
func (r *run) sinceUnix(ns int64) int64 { return ns - r.base.UnixNano() }

// kickModule kicks the benchmark task by name, for a task module to run.
func (r *run) kickModule(app *core.App, payload string) kickFunc {
	p, _ := json.Marshal(payload)
	return func(ctx context.Context, idx, at int64) (waitFunc, error) {
		h, err := app.KickByName(ctx, core.RawKick{
			TaskName: TaskName,
			Args: []json.RawMessage{
				strconv.AppendInt(nil, idx, 10), strconv.AppendInt(nil, at, 10), p,
			},
		})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, fn func(int64, error)) {
			h.OnResult(ctx, func(res *core.Result[json.RawMessage], err error) {
				if err != nil {
					fn(0, err)
					return
				}
				span, err := moduleSpan(res.ReturnValue)
				if err != nil {
					fn(0, fmt.Errorf("result %s is not the benchmark task's [start, end]: %w", res.ReturnValue, err))
					return
				}
				fn(r.sinceUnix(span[1]), nil)
			})
		}, nil
	}
}
