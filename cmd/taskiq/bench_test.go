package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/harness/bench"
)

func parseBenchFlags(t *testing.T, args ...string) (*benchFlags, error) {
	t.Helper()
	f := &benchFlags{}
	cmd := benchCommand(&globals{}, f)
	require.NoError(t, cmd.ParseFlags(args))
	return f, f.finish()
}

func TestBenchFlagDefaults(t *testing.T) {
	t.Parallel()
	f, err := parseBenchFlags(t)
	require.NoError(t, err)
	require.Equal(t, "taskiq.hcl", f.opts.Config)
	require.Equal(t, 100000, f.opts.Tasks)
	require.Equal(t, 8, f.opts.Concurrency)
	require.Equal(t, 0, f.opts.Payload)
	require.Equal(t, bench.Work{Kind: "noop"}, f.opts.Work)
	require.False(t, f.opts.Results)
	require.Equal(t, 10*time.Minute, f.opts.Timeout)
	require.False(t, f.asJSON)
}

func TestBenchFlagsParse(t *testing.T) {
	t.Parallel()
	f, err := parseBenchFlags(t, "-c", "x.hcl", "--tasks", "500", "--concurrency", "64", "--payload", "128",
		"--work", "sleep:2ms", "--results", "--rate", "1000", "--duration", "3s", "--max-async-tasks", "512",
		"--json", "--wait-every", "10", "--timeout", "1m")
	require.NoError(t, err)
	o := f.opts
	require.Equal(t, "x.hcl", o.Config)
	require.Equal(t, 500, o.Tasks)
	require.Equal(t, 64, o.Concurrency)
	require.Equal(t, 128, o.Payload)
	require.Equal(t, bench.Work{Kind: "sleep", D: 2 * time.Millisecond}, o.Work)
	require.True(t, o.Results)
	require.Equal(t, 1000.0, o.Rate)
	require.Equal(t, 3*time.Second, o.Duration)
	require.Equal(t, 512, o.MaxAsyncTasks)
	require.Equal(t, 10, o.WaitEvery)
	require.Equal(t, time.Minute, o.Timeout)
	require.True(t, f.asJSON)

	f, err = parseBenchFlags(t, "--work", "cpu:100us")
	require.NoError(t, err)
	require.Equal(t, bench.Work{Kind: "cpu", D: 100 * time.Microsecond}, f.opts.Work)
}

func TestBenchFlagErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--work", "spin"}, "unknown kind"},
		{[]string{"--work", "sleep"}, "needs a duration"},
		{[]string{"--work", "cpu:fast"}, "bad duration"},
		{[]string{"--work", "noop:1ms"}, "takes no duration"},
		{[]string{"--tasks", "0"}, "--tasks must be > 0"},
		{[]string{"--concurrency", "0"}, "--concurrency must be > 0"},
		{[]string{"--payload", "-1"}, "--payload"},
		{[]string{"--rate", "100"}, "--rate needs --duration"},
		{[]string{"--wait-every", "0"}, "--wait-every"},
		{[]string{"--results", "--kick-only"}, "drop --kick-only"},
		{[]string{"--idle", "--tasks", "10"}, "--idle kicks nothing: drop --tasks"},
		{[]string{"--idle", "--rate", "10", "--duration", "1s"}, "drop --rate"},
		{[]string{"--idle", "--results"}, "drop --results"},
		{[]string{"--idle", "--kick-only"}, "drop --kick-only"},
		{[]string{"--idle", "--work", "sleep:1ms"}, "drop --work"},
		{[]string{"--idle", "--duration", "-1s"}, "--duration must be ≥ 0"},
	} {
		_, err := parseBenchFlags(t, tc.args...)
		require.ErrorContains(t, err, tc.want, "args %v", tc.args)
	}
}

func TestBenchIdleFlags(t *testing.T) {
	t.Parallel()
	f, err := parseBenchFlags(t, "--idle", "-c", "x.hcl", "--duration", "2s", "--max-async-tasks", "64", "--json")
	require.NoError(t, err)
	require.True(t, f.opts.Idle)
	require.Equal(t, "x.hcl", f.opts.Config)
	require.Equal(t, 2*time.Second, f.opts.Duration)
	require.Equal(t, 64, f.opts.MaxAsyncTasks)
	require.True(t, f.asJSON)

	f, err = parseBenchFlags(t)
	require.NoError(t, err)
	require.False(t, f.opts.Idle, "idle is not the default mode")
}

// benchReport mirrors the JSON fields the test checks.
type benchReport struct {
	Mode        string  `json:"mode"`
	Planned     int64   `json:"planned"`
	Kicked      int64   `json:"kicked"`
	Executed    int64   `json:"executed"`
	ResultsRead int64   `json:"results_read"`
	KicksPerSec float64 `json:"kicks_per_sec"`
	TasksPerSec float64 `json:"tasks_per_sec"`
	Start       *struct {
		Count         int
		P50, P95, P99 float64
	} `json:"latency_start"`
	Result *struct {
		Count         int
		P50, P95, P99 float64
	} `json:"latency_result"`
	SavedVisible *struct {
		Count         int
		P50, P95, P99 float64
	} `json:"latency_saved_visible"`
	LoadMS        float64 `json:"load_ms"`
	WorkerReadyMS float64 `json:"worker_ready_ms"`
	IdleSeconds   float64 `json:"idle_seconds"`
	Processes     []struct {
		PID        int     `json:"pid"`
		Name       string  `json:"name"`
		Role       string  `json:"role"`
		Plugin     string  `json:"plugin"`
		StartMS    float64 `json:"start_ms"`
		CPUSeconds float64 `json:"cpu_seconds"`
		PeakRSSMB  float64 `json:"peak_rss_mb"`
		RSSMB      float64 `json:"rss_mb"`
	} `json:"processes"`
}

func TestBenchRunsAgainstInMemoryPlugin(t *testing.T) {
	dir := builtPlugins(t)
	path := writeConfig(t, `plugin_dir = "`+dir+`"
broker "default" { plugin = "taskiq-inmemory" }
result_backend "default" { plugin = "taskiq-inmemory" }
worker { max_async_tasks = 32 }
`)
	code, out, errOut := runCLI("bench", "-c", path, "--tasks", "200", "--concurrency", "4",
		"--payload", "16", "--results", "--json", "--timeout", "2m")
	require.Equal(t, 0, code, errOut)

	var rep benchReport
	dec := json.NewDecoder(bytes.NewReader([]byte(out)))
	require.NoError(t, dec.Decode(&rep), out)
	require.False(t, dec.More(), "--json prints exactly one object")
	require.Equal(t, "closed", rep.Mode)
	require.EqualValues(t, 200, rep.Planned)
	require.EqualValues(t, 200, rep.Kicked)
	require.Equal(t, rep.Kicked, rep.Executed)
	require.Equal(t, rep.Kicked, rep.ResultsRead)
	require.Positive(t, rep.KicksPerSec)
	require.Positive(t, rep.TasksPerSec)
	for _, l := range []*struct {
		Count         int
		P50, P95, P99 float64
	}{rep.Start, rep.Result, rep.SavedVisible} {
		require.NotNil(t, l)
		require.Equal(t, 200, l.Count, "every task has each latency, saved → visible included")
		require.GreaterOrEqual(t, l.P50, 0.0)
		require.LessOrEqual(t, l.P50, l.P95)
		require.LessOrEqual(t, l.P95, l.P99)
	}
	// The host and both plugin processes (broker and result backend).
	require.Len(t, rep.Processes, 3)
	require.Equal(t, "host", rep.Processes[0].Role)
	for _, p := range rep.Processes[1:] {
		require.Equal(t, "plugin", p.Role)
		require.Equal(t, "taskiq-inmemory", p.Name)
	}
	for _, p := range rep.Processes {
		require.Positive(t, p.PID)
		require.Positive(t, p.PeakRSSMB)
		require.Positive(t, p.RSSMB)
		require.GreaterOrEqual(t, p.CPUSeconds, 0.0)
	}
	require.Positive(t, rep.LoadMS)
	require.ElementsMatch(t, []string{"", "broker.default", "result_backend.default"},
		[]string{rep.Processes[0].Plugin, rep.Processes[1].Plugin, rep.Processes[2].Plugin})
	for _, p := range rep.Processes[1:] {
		require.Positive(t, p.StartMS, p.Plugin)
	}
}

func TestBenchIdleReportsEveryPluginProcess(t *testing.T) {
	dir := builtPlugins(t)
	path := writeConfig(t, `plugin_dir = "`+dir+`"
broker "default" { plugin = "taskiq-inmemory" }
result_backend "default" { plugin = "taskiq-inmemory" }
middleware "retry" { plugin = "taskiq-retry-middleware" }
`)
	code, out, errOut := runCLI("bench", "--idle", "-c", path, "--duration", "300ms", "--json", "--timeout", "2m")
	require.Equal(t, 0, code, errOut)

	var rep benchReport
	dec := json.NewDecoder(bytes.NewReader([]byte(out)))
	require.NoError(t, dec.Decode(&rep), out)
	require.False(t, dec.More(), "--json prints exactly one object")
	require.Equal(t, "idle", rep.Mode)
	require.Zero(t, rep.Kicked, "an idle run kicks nothing")
	require.Zero(t, rep.Executed)
	require.Positive(t, rep.LoadMS)
	require.Positive(t, rep.WorkerReadyMS)
	require.GreaterOrEqual(t, rep.IdleSeconds, 0.3)
	for _, field := range []string{`"load_ms"`, `"worker_ready_ms"`, `"idle_seconds"`, `"rss_mb"`, `"peak_rss_mb"`, `"start_ms"`, `"plugin"`} {
		require.Contains(t, out, field)
	}

	// The host, then one entry per plugin process: broker, result backend
	// and middleware each run in their own.
	require.Len(t, rep.Processes, 4)
	host := rep.Processes[0]
	require.Equal(t, "host", host.Role)
	require.Empty(t, host.Plugin)
	require.Zero(t, host.StartMS)
	plugins := map[string]string{}
	pids := map[int]bool{host.PID: true}
	for _, p := range rep.Processes[1:] {
		require.Equal(t, "plugin", p.Role)
		require.Positive(t, p.StartMS, p.Plugin)
		plugins[p.Plugin] = p.Name
		require.False(t, pids[p.PID], "pid %d reported twice", p.PID)
		pids[p.PID] = true
	}
	require.Equal(t, map[string]string{
		"broker.default":         "taskiq-inmemory",
		"result_backend.default": "taskiq-inmemory",
		"middleware.retry":       "taskiq-retry-middleware",
	}, plugins)
	for _, p := range rep.Processes {
		require.Positive(t, p.PID)
		require.Positive(t, p.RSSMB, p.Name)
		require.Positive(t, p.PeakRSSMB, p.Name)
		require.GreaterOrEqual(t, p.CPUSeconds, 0.0)
	}
}

func TestBenchIdleText(t *testing.T) {
	dir := builtPlugins(t)
	path := writeConfig(t, `plugin_dir = "`+dir+`"
broker "default" { plugin = "taskiq-inmemory" }
`)
	code, out, errOut := runCLI("bench", "--idle", "-c", path, "--duration", "100ms", "--timeout", "2m")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "idle mode")
	require.Contains(t, out, "core.Load")
	require.Contains(t, out, "1 plugin process started")
	require.Contains(t, out, "broker.default")
	require.Contains(t, out, "rss")
	require.NotContains(t, out, "kicks/s")
}

func TestBenchOpenLoopAndText(t *testing.T) {
	dir := builtPlugins(t)
	path := writeConfig(t, `plugin_dir = "`+dir+`"
broker "default" { plugin = "taskiq-inmemory" }
`)
	// 200 tasks at a rate high enough that the run stays short; the
	// --tasks cap ends it before --duration does.
	code, out, errOut := runCLI("bench", "-c", path, "--tasks", "200", "--rate", "2000", "--duration", "1m",
		"--work", "sleep:100us", "--timeout", "2m")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "open mode")
	require.Contains(t, out, "200 kicked of 200 planned, 200 executed")
	require.Contains(t, out, "kick→start")
	require.NotContains(t, out, "kick→result", "no --results, no result latency")
}

func TestBenchReportsAMissingConfig(t *testing.T) {
	t.Parallel()
	code, _, errOut := runCLI("bench", "-c", "/nonexistent/taskiq.hcl", "--tasks", "1")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "taskiq.hcl")
}

// --module runs the benchmark task in a task-module process under the
// worker host: every kicked task runs there once, results included.
func TestBenchRunsTheTaskInAModule(t *testing.T) {
	dir := builtPlugins(t)
	mod := filepath.Join(t.TempDir(), "taskiq-bench-module")
	out, err := exec.Command("go", "build", "-o", mod, "../../internal/harness/bench/module").CombinedOutput()
	require.NoError(t, err, string(out))
	path := writeConfig(t, `plugin_dir = "`+dir+`"
broker "default" { plugin = "taskiq-inmemory" }
result_backend "default" { plugin = "taskiq-inmemory" }
worker { max_async_tasks = 32 }
`)
	code, stdout, errOut := runCLI("bench", "-c", path, "--module", mod, "--tasks", "300", "--concurrency", "4",
		"--results", "--work", "sleep:100us", "--json", "--timeout", "2m")
	require.Equal(t, 0, code, errOut)
	var rep struct {
		benchReport
		Module    string `json:"module"`
		Processes []struct {
			Name       string  `json:"name"`
			CPUSeconds float64 `json:"cpu_seconds"`
		} `json:"processes"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep), stdout)
	require.Equal(t, mod, rep.Module)
	require.EqualValues(t, 300, rep.Kicked)
	require.Equal(t, rep.Kicked, rep.Executed)
	require.Equal(t, rep.Kicked, rep.ResultsRead)
	require.NotNil(t, rep.Start)
	require.Equal(t, 300, rep.Start.Count)
	require.GreaterOrEqual(t, rep.Start.P50, 0.0)
	var names []string
	for _, p := range rep.Processes {
		names = append(names, p.Name)
	}
	require.Contains(t, names, "taskiq-bench-module", "the module process is measured with the others")
}

func TestBenchModuleFlagErrors(t *testing.T) {
	_, err := parseBenchFlags(t, "--module", "./m", "--kick-only")
	require.ErrorContains(t, err, "--kick-only")
	_, err = parseBenchFlags(t, "--module", "./m", "--idle")
	require.ErrorContains(t, err, "--module")
}
