package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskiq-go/taskiq/core"
)

// DefaultIdle is how long an idle run waits when Options.Duration is zero.
const DefaultIdle = 5 * time.Second

// runIdle is Run with Options.Idle: app was loaded in loadTime. It registers
// the benchmark task, starts the worker, kicks nothing and waits
// opts.Duration. Then it runs a GC that returns free memory to the OS in
// this process and reads every process's resident set (VmRSS) and peak
// (VmHWM) from /proc, and the CPU each used during the wait. Each plugin
// process is reported with its taskiq.hcl block and its start time (launch
// → configured, as core measured it).
//
// An idle worker is still a worker: a message on its queue (or a delivery
// whose lease expired in another consumer) is taken and run. Benchmark tasks
// that arrive are counted in Report.Executed; other tasks go to the dead
// letter store as unknown. Point the run at a queue nobody else uses.
func runIdle(ctx context.Context, opts Options, app *core.App, loadTime time.Duration) (*Report, error) {
	var executed atomic.Int64
	if _, err := core.NewTask[int64](app, TaskName, func(context.Context, int64, int64, string) (int64, error) {
		executed.Add(1)
		return 0, nil
	}); err != nil {
		return nil, err
	}
	wo := workerOptions(app, opts)
	workerDone := make(chan error, 1)
	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	workerBegin := time.Now()
	if err := startWorker(ctx, workerCtx, app, wo, opts, workerDone); err != nil {
		return nil, err
	}
	workerReady := time.Since(workerBegin)

	rep := &Report{
		Config:        opts.Config,
		Brokers:       strings.Join(app.BrokerNames(), ","),
		Mode:          "idle",
		MaxAsyncTasks: wo.MaxAsyncTasks,
		LoadMS:        msDur(loadTime),
		WorkerReadyMS: msDur(workerReady),
		NumCPU:        runtime.NumCPU(),
		GoVersion:     runtime.Version(),
		CPUPressure:   cpuPressure(),
	}
	before, _ := appSnapshot(app)
	idleBegin := time.Now()
	t := time.NewTimer(opts.Duration)
	var runErr error
	select {
	case <-t.C:
	case err := <-workerDone:
		t.Stop()
		runErr = fmt.Errorf("worker stopped during the idle wait: %w", err)
		workerDone <- err
	case <-ctx.Done():
		t.Stop()
		runErr = fmt.Errorf("idle wait cut short after %v: %w", time.Since(idleBegin).Round(time.Millisecond), ctx.Err())
	}
	rep.IdleSeconds = time.Since(idleBegin).Seconds()
	// What the host keeps resident, not garbage it has yet to return.
	runtime.GC()
	debug.FreeOSMemory()
	if opts.HeapProfile != nil {
		if err := pprof.Lookup("heap").WriteTo(opts.HeapProfile, 0); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("heap profile: %w", err))
		}
	}
	after, snapErr := appSnapshot(app)
	rep.Processes = diffSnapshots(before, after)
	labelPlugins(rep.Processes, app.PluginProcesses())
	for _, p := range rep.Processes {
		rep.TotalCPUSeconds += p.CPUSeconds
	}

	stopWorker()
	if err := <-workerDone; err != nil && runErr == nil && !errors.Is(err, context.Canceled) {
		runErr = fmt.Errorf("worker: %w", err)
	}
	rep.Executed = executed.Load()
	return rep, errors.Join(runErr, snapErr)
}

// appSnapshot reads this process and the plugin processes app started (not
// every descendant: only what the App owns). A plugin process that cannot
// be read is left out and named in the error.
func appSnapshot(app *core.App) (map[int]ProcStat, error) {
	self := os.Getpid()
	out := map[int]ProcStat{}
	var errs []error
	if st, _, err := readProc(self); err == nil {
		st.Role = "host"
		out[self] = st
	} else {
		errs = append(errs, err)
	}
	for _, p := range app.PluginProcesses() {
		if p.PID <= 0 {
			errs = append(errs, fmt.Errorf("plugin %s.%s (%s) has no running process", p.Kind, p.Name, p.Path))
			continue
		}
		st, _, err := readProc(p.PID)
		if err != nil {
			errs = append(errs, fmt.Errorf("plugin %s.%s (pid %d): %w", p.Kind, p.Name, p.PID, err))
			continue
		}
		st.Role = "plugin"
		out[p.PID] = st
	}
	return out, errors.Join(errs...)
}

// labelPlugins names each plugin process in ps after the taskiq.hcl block it
// serves and adds its start time, matching by pid.
func labelPlugins(ps []ProcStat, plugins []core.PluginProcess) {
	for i := range ps {
		for _, p := range plugins {
			if p.PID != 0 && p.PID == ps[i].PID {
				ps[i].Plugin = string(p.Kind) + "." + p.Name
				ps[i].StartMS = msDur(p.StartDuration)
			}
		}
	}
}

// writeIdleText prints an idle report.
func (rep *Report) writeIdleText(w io.Writer) {
	fmt.Fprintf(w, "config        %s (broker %s), idle mode: worker ready, nothing kicked, %.1fs idle\n", rep.Config, rep.Brokers, rep.IdleSeconds)
	plugins, startSum := 0, 0.0
	for _, p := range rep.Processes {
		if p.Role == "plugin" {
			plugins++
			startSum += p.StartMS
		}
	}
	procs := "plugin processes started one after another"
	if plugins == 1 {
		procs = "plugin process started"
	}
	fmt.Fprintf(w, "startup       core.Load %.1f ms (%d %s, %.1f ms of it), worker ready %.1f ms later (max_async_tasks %d)\n",
		rep.LoadMS, plugins, procs, startSum, rep.WorkerReadyMS, rep.MaxAsyncTasks)
	fmt.Fprintf(w, "processes     %d CPUs, %s; plugin start = launch → configured; rss now (host after GC), peak rss, CPU seconds while idle:\n", rep.NumCPU, rep.GoVersion)
	var total float64
	for _, p := range rep.Processes {
		total += p.RSSMB
		start := ""
		if p.Role == "plugin" {
			start = fmt.Sprintf("start %6.1f ms", p.StartMS)
		}
		fmt.Fprintf(w, "  %-6s %-24s %-22s pid %-7d %-15s  rss %6.1f MB (anon %5.1f, file %5.1f)  peak rss %6.1f MB  cpu %5.2fs\n",
			p.Role, p.Name, p.Plugin, p.PID, start, p.RSSMB, p.RSSAnonMB, p.RSSFileMB, p.PeakRSSMB, p.CPUSeconds)
	}
	fmt.Fprintf(w, "  total rss %.1f MB, total cpu %.2fs\n", total, rep.TotalCPUSeconds)
	if rep.Executed > 0 {
		fmt.Fprintf(w, "warning: %d benchmark tasks arrived and ran during the idle wait: another process uses this queue, so the worker was not idle\n", rep.Executed)
	}
	if rep.CPUPressure > 5 {
		fmt.Fprintf(w, "warning: CPU pressure was %.0f%% before the idle wait (/proc/pressure/cpu): other work competed for the CPUs\n", rep.CPUPressure)
	}
}
