// Command chaos-module is the task module of the chaos runs (see
// docs/chaos.md). Every task appends a start line and an end line to the
// execution log in $TMPDIR (package chaos/execlog), so the harness can count
// how many times each task id ran and on which worker.
//
// Tasks:
//
//   - chaos:echo(payload, ms) sleeps ms milliseconds (honouring
//     cancellation) and returns payload: the well-behaved task.
//
//   - chaos:panic(payload) panics.
//
//   - chaos:hang(payload, ms) sleeps ms milliseconds ignoring its context:
//     kicked with a `timeout` label shorter than ms, it hangs past it.
//
//   - chaos:memhog(payload, mib) tries to allocate mib MiB in 32 MiB chunks,
//     touching every page, and fails once the module's heap passes
//     memhogCap: "allocates too much" without taking the machine down.
//
// Build it as the Makefile does (make chaos-bins):
//
//	go build -o bin/chaos-module ./internal/harness/chaos/tasks-module
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/internal/harness/chaos/execlog"
)

const version = "0.1.0"

const (
	// memhogCap is the heap size at which chaos:memhog gives up. A real
	// runaway task would grow until the kernel's OOM killer ends the module;
	// the chaos run must not put the shared machine at that risk, so the
	// task checks its own heap after every chunk and fails instead.
	memhogCap = 256 << 20
	// memhogChunk is one allocation of chaos:memhog.
	memhogChunk = 32 << 20
	// moduleMemoryLimit is the Go runtime's soft limit for the whole module
	// (debug.SetMemoryLimit): a backstop that makes the GC work harder long
	// before the machine is in danger.
	moduleMemoryLimit = 1 << 30
)

var app = core.NewModule("chaos-tasks")

var (
	_ = core.MustTask[string](app, "chaos:echo", echo, core.WithParamNames("payload", "ms"))
	_ = core.MustTask[string](app, "chaos:panic", panicTask, core.WithParamNames("payload"))
	_ = core.MustTask[string](app, "chaos:hang", hang, core.WithParamNames("payload", "ms"))
	_ = core.MustTask[string](app, "chaos:memhog", memhog, core.WithParamNames("payload", "mib"))
)

// log is opened in main, before the module serves any task.
var log *execlog.Writer

// record marks the start of an execution and returns the function that
// marks its end with the task's outcome.
func record(ctx context.Context) func(err error) {
	id := core.ContextFrom(ctx).Message.TaskID
	if err := log.Start(id); err != nil {
		// An execution that cannot be recorded would make the run's counts
		// wrong; a crash is seen by the harness, a silent gap is not.
		panic(fmt.Sprintf("chaos-tasks: cannot record the start of %s: %v", id, err))
	}
	return func(err error) {
		outcome := "ok"
		if err != nil {
			outcome = "err"
		}
		_ = log.End(id, outcome)
	}
}

func echo(ctx context.Context, payload string, ms int) (_ string, err error) {
	end := record(ctx)
	defer func() { end(err) }()
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return payload, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func panicTask(ctx context.Context, payload string) (string, error) {
	end := record(ctx)
	defer end(fmt.Errorf("panicked"))
	panic("chaos:panic was asked to panic (payload " + payload + ")")
}

func hang(ctx context.Context, payload string, ms int) (string, error) {
	end := record(ctx)
	defer end(nil)
	time.Sleep(time.Duration(ms) * time.Millisecond) // deliberately deaf to ctx
	return payload, nil
}

// memhogMu runs one memhog at a time per module, so the cap bounds the
// module's heap rather than each task's share of it.
var memhogMu sync.Mutex

func memhog(ctx context.Context, payload string, mib int) (_ string, err error) {
	end := record(ctx)
	defer func() { end(err) }()
	memhogMu.Lock()
	defer memhogMu.Unlock()
	defer func() {
		runtime.GC()
		debug.FreeOSMemory()
	}()
	var chunks [][]byte
	var ms runtime.MemStats
	for got := 0; got < mib<<20; got += memhogChunk {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		c := make([]byte, memhogChunk)
		for i := 0; i < len(c); i += 4096 {
			c[i] = 1 // touch every page: resident, not just reserved
		}
		chunks = append(chunks, c)
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > memhogCap {
			return "", fmt.Errorf("chaos:memhog refused to allocate %d MiB: the module heap reached %d MiB after %d MiB, over its cap of %d MiB",
				mib, ms.HeapAlloc>>20, len(chunks)*memhogChunk>>20, memhogCap>>20)
		}
	}
	return payload, nil
}

func main() {
	debug.SetMemoryLimit(moduleMemoryLimit)
	w, err := execlog.Open(execlog.Path())
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos-tasks:", err)
		os.Exit(1)
	}
	log = w
	core.ServeModule(app, version)
}
