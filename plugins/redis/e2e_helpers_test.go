package taskiqredis

// Helpers of the end-to-end tests (e2e_test.go): the plugin binary, the
// taskiq.hcl they load, the Redis they run against, the worker process they
// kill, and /proc lookups that find plugin processes.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
)

// pluginBinDir holds the taskiq-redis binary built for this test binary;
// TestMain removes it.
var pluginBinDir string

// buildPlugin compiles cmd/taskiq-redis once per test binary and returns its
// path. Tests run with the package directory as working directory.
var buildPlugin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "taskiq-redis-e2e-")
	if err != nil {
		return "", err
	}
	pluginBinDir = dir
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(dir, "taskiq-redis")
	out, err := exec.Command(goTool, "build", "-o", bin, "./cmd/taskiq-redis").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/taskiq-redis: %v\n%s", err, out)
	}
	return bin, nil
})

// pluginCopy returns a path of the plugin binary private to the test, named
// name, so that the test can tell its own plugin processes apart (by argv[0])
// from those of tests running in parallel and from each other (broker vs
// result backend).
func pluginCopy(t testing.TB, name string) string {
	t.Helper()
	src, err := buildPlugin()
	require.NoError(t, err)
	dst := filepath.Join(t.TempDir(), name)
	if err := os.Link(src, dst); err == nil {
		return dst
	}
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, data, 0o755))
	return dst
}

// e2eEnv is the Redis an end-to-end test runs against: real Redis (database
// 15) when TASKIQ_REDIS_URL is set, else a private miniredis. CI promises a
// real Redis, so there a missing TASKIQ_REDIS_URL fails instead of quietly
// testing against miniredis.
func e2eEnv(t testing.TB) *testEnv {
	t.Helper()
	if u := realRedisURL(t); u != "" {
		return newRealEnv(t, u)
	}
	requireNotCI(t, "TASKIQ_REDIS_URL is not set: CI must run the end-to-end tests against real Redis; set TASKIQ_REDIS_URL=redis://127.0.0.1:6379/15")
	return newMiniEnv(t)
}

// requireNotCI fails the test when it runs in CI, where what it needs must
// exist; elsewhere the caller falls back or skips.
func requireNotCI(t testing.TB, why string) {
	t.Helper()
	if v := os.Getenv("CI"); v != "" && v != "false" && v != "0" {
		t.Fatal(why)
	}
}

// hclConfig describes a taskiq.hcl: a Redis broker and result backend, each
// served by its own copy of the plugin binary.
type hclConfig struct {
	brokerPath, resultsPath string
	url                     string
	broker                  map[string]any // broker config attributes besides url
	results                 map[string]any // result backend config attributes besides url
	worker                  map[string]any // worker block attributes
}

// hclExpr is written into the file as it is (an expression such as env(...)).
type hclExpr string

func hclValue(v any) string {
	switch x := v.(type) {
	case hclExpr:
		return string(x)
	case string:
		return strconv.Quote(x)
	default:
		return fmt.Sprint(x)
	}
}

func hclAttrs(buf *bytes.Buffer, indent string, attrs map[string]any) {
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(buf, "%s%s = %s\n", indent, k, hclValue(attrs[k]))
	}
}

// write renders the file into dir and returns its path.
func (c hclConfig) write(t testing.TB, dir string) string {
	t.Helper()
	var buf bytes.Buffer
	broker := map[string]any{"url": c.url}
	for k, v := range c.broker {
		broker[k] = v
	}
	fmt.Fprintf(&buf, "broker \"default\" {\n  plugin = %q\n  config {\n", c.brokerPath)
	hclAttrs(&buf, "    ", broker)
	buf.WriteString("  }\n}\n\n")
	if c.resultsPath != "" {
		results := map[string]any{"url": c.url}
		for k, v := range c.results {
			results[k] = v
		}
		fmt.Fprintf(&buf, "result_backend \"default\" {\n  plugin = %q\n  config {\n", c.resultsPath)
		hclAttrs(&buf, "    ", results)
		buf.WriteString("  }\n}\n\n")
	}
	if len(c.worker) > 0 {
		buf.WriteString("worker {\n")
		hclAttrs(&buf, "  ", c.worker)
		buf.WriteString("}\n")
	}
	path := filepath.Join(dir, "taskiq.hcl")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	return path
}

// logBuffer collects an App's log lines (the host's and, through it, its
// plugins'); a failing test prints them.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// tail returns the last n bytes, which is what explains a failure.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// loadApp runs core.Load on path with a logger that keeps the lines for the
// failure output, and closes the App (stopping its plugins) at cleanup.
func loadApp(t testing.TB, path string, opts ...core.Option) *core.App {
	t.Helper()
	logs := &logBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "taskiq", Level: hclog.Warn, Output: logs})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	app, err := core.Load(ctx, path, append([]core.Option{core.WithLogger(logger)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = app.Close(ctx)
		if t.Failed() {
			t.Logf("logs of the App loaded from %s:\n%s", path, tail(logs.String(), 8000))
		}
	})
	return app
}

// runWorker runs app's worker (the worker block of taskiq.hcl, adjusted by
// adjust) until the test ends, and waits until its stream is open. The
// returned channel receives RunWorker's result, so a test can assert that the
// worker is still running.
func runWorker(t testing.TB, app *core.App, adjust func(*core.WorkerOptions)) <-chan error {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	opts := app.WorkerDefaults()
	ready := make(chan struct{})
	opts.Ready = func() { close(ready) }
	opts.ShutdownTimeout = 10 * time.Second
	if adjust != nil {
		adjust(&opts)
	}
	done := make(chan error, 1)
	go func() { done <- app.RunWorker(ctx, opts) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("the worker did not stop within 30s of its context ending")
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("the worker ended before its stream opened: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not open its delivery stream within 30s")
	}
	return done
}

// --- Processes, seen through /proc (Linux) ---

// procInfo is one process as /proc shows it.
type procInfo struct {
	pid, ppid int
	argv0     string
}

// processes lists every process with its parent and argv[0].
func processes() []procInfo {
	entries, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may contain spaces and ")".
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 2 || fields[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		argv0, _, _ := strings.Cut(string(cmdline), "\x00")
		out = append(out, procInfo{pid: pid, ppid: ppid, argv0: argv0})
	}
	return out
}

// childrenOf returns the live children of ppid, optionally only those whose
// argv[0] is path.
func childrenOf(ppid int, path string) []int {
	var pids []int
	for _, p := range processes() {
		if p.ppid == ppid && (path == "" || p.argv0 == path) {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// processGone reports whether pid has exited: no such process, or a zombie
// left for a reaper that a container may not run.
func processGone(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// onlyChild waits until exactly one child of this process runs path and
// returns its pid.
func onlyChild(t testing.TB, path string) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		pids := childrenOf(os.Getpid(), path)
		if len(pids) == 1 {
			pid = pids[0]
		}
		return len(pids) == 1
	}, 10*time.Second, 10*time.Millisecond, "expected exactly one plugin process running %s", path)
	return pid
}

// --- The worker process of the SIGKILL test ---

// Environment of a worker process: the test binary re-executed with these
// set runs a worker instead of tests (helper-process idiom).
const (
	envE2EWorker   = "TASKIQ_E2E_WORKER"    // the worker's name; non-empty = run as worker
	envE2EConfig   = "TASKIQ_E2E_CONFIG"    // path of taskiq.hcl
	envE2ERedisURL = "TASKIQ_E2E_REDIS_URL" // where executions are recorded
	envE2EQueue    = "TASKIQ_E2E_QUEUE"     // names the executions list
	envE2ESleep    = "TASKIQ_E2E_SLEEP"     // how long each execution takes
)

// recordTask is the task the worker processes run.
const recordTask = "e2e.record"

// executionsKey is the Redis list the worker processes append one
// "<task id> <worker> <attempt> <unix ms>" line to per execution.
func executionsKey(queue string) string { return "executions:" + queue }

// runWorkerProcessIfRequested turns the test binary into a worker process
// when envE2EWorker is set: it loads the given taskiq.hcl (plugins become its
// children), records every execution of recordTask in Redis, prints "ready"
// once its stream is open, and runs until SIGTERM (graceful) or SIGKILL.
func runWorkerProcessIfRequested() {
	name := os.Getenv(envE2EWorker)
	if name == "" {
		return
	}
	if err := runWorkerProcess(name); err != nil {
		fmt.Fprintf(os.Stderr, "worker %s: %v\n", name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runWorkerProcess(name string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// Never outlive the test: a hard bound, and the parent's death.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	go func() {
		parent := os.Getppid()
		for ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			if os.Getppid() != parent {
				cancel()
			}
		}
	}()

	opt, err := redis.ParseURL(os.Getenv(envE2ERedisURL))
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	key := executionsKey(os.Getenv(envE2EQueue))
	sleep, err := time.ParseDuration(os.Getenv(envE2ESleep))
	if err != nil {
		return err
	}

	logger := hclog.New(&hclog.LoggerOptions{Name: "worker-" + name, Level: hclog.Warn, Output: os.Stderr})
	app, err := core.Load(ctx, os.Getenv(envE2EConfig), core.WithLogger(logger))
	if err != nil {
		return err
	}
	defer app.Close(context.Background())
	core.MustTask[string](app, recordTask, func(ctx context.Context, n int) (string, error) {
		tc := core.ContextFrom(ctx)
		line := fmt.Sprintf("%s %s %d %d", tc.Message.TaskID, name, tc.Delivery.Attempt, time.Now().UnixMilli())
		if err := rdb.RPush(ctx, key, line).Err(); err != nil {
			return "", err
		}
		// Long enough that a kill finds tasks in flight.
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return name, nil
	})
	opts := app.WorkerDefaults()
	opts.Ready = func() { fmt.Println("ready") }
	return app.RunWorker(ctx, opts)
}

// workerProcess is a running worker process.
type workerProcess struct {
	name   string
	cmd    *exec.Cmd
	stderr *logBuffer
	exited chan struct{} // closed once the process has been waited for
	err    error         // Wait's result, set before exited closes
}

// wait waits up to d for the process to exit and returns Wait's result.
func (w *workerProcess) wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-w.exited:
		return w.err
	case <-time.After(d):
		t.Fatalf("worker %s still running after %v", w.name, d)
		return nil
	}
}

// startWorkerProcess starts a worker process on cfg and waits until its
// stream is open. It is killed at cleanup if still running.
func startWorkerProcess(t *testing.T, name, cfg, redisURL, queue string, sleep time.Duration) *workerProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envE2EWorker+"="+name, envE2EConfig+"="+cfg, envE2ERedisURL+"="+redisURL,
		envE2EQueue+"="+queue, envE2ESleep+"="+sleep.String())
	w := &workerProcess{name: name, cmd: cmd, stderr: &logBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = w.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		w.err = cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-w.exited:
		case <-time.After(10 * time.Second):
		}
		if t.Failed() {
			t.Logf("stderr of worker %s:\n%s", name, tail(w.stderr.String(), 8000))
		}
	})
	select {
	case <-ready:
	case <-w.exited:
		t.Fatalf("worker %s exited before it was ready: %v\n%s", name, w.err, w.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("worker %s not ready within 60s:\n%s", name, w.stderr)
	}
	return w
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
