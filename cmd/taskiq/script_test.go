package main

import (
	"bytes"
	"fmt"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/taskiq-go/taskiq/internal/leaktest"
)

// The script tests in testdata/script run the real binaries: taskiq, the
// Redis plugin and the example task module, built once per test run.
// Redis is a miniredis in this process, or the server TASKIQ_REDIS_URL
// names (each script uses its own queue and key prefix there).

var (
	scriptBinOnce sync.Once
	scriptBinDir  string
	scriptBinErr  error
)

// scriptBinaries builds the binaries the scripts run.
func scriptBinaries() (string, error) {
	scriptBinOnce.Do(func() {
		scriptBinDir, scriptBinErr = os.MkdirTemp("", "taskiq-script-bin")
		if scriptBinErr != nil {
			return
		}
		for name, pkg := range map[string]string{
			"taskiq":          ".",
			"taskiq-redis":    "../../plugins/redis/cmd/taskiq-redis",
			"example-tasks":   "../../examples/tasks-module",
			"scheduled-tasks": "../../examples/scheduled-tasks",
			// A plugin answering as one built with the first release of
			// protocol v1 does (no CheckConfig).
			"taskiq-baseline": "./testdata/baseline-plugin",
		} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(scriptBinDir, name), pkg).CombinedOutput()
			if err != nil {
				scriptBinErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	return scriptBinDir, scriptBinErr
}

// TestMain removes the script binaries once every test ran (the other
// tests of this package build what they need themselves).
func TestMain(m *testing.M) {
	code := m.Run()
	if scriptBinDir != "" {
		_ = os.RemoveAll(scriptBinDir)
	}
	os.Exit(leaktest.Code(code))
}

func TestScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and runs worker processes")
	}
	bin, err := scriptBinaries()
	if err != nil {
		t.Fatal(err)
	}

	redisURL := os.Getenv("TASKIQ_REDIS_URL")
	if redisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(mr.Close)
		redisURL = "redis://" + mr.Addr() + "/0"
	}
	var seq int
	var seqMu sync.Mutex
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			seqMu.Lock()
			seq++
			n := seq
			seqMu.Unlock()
			env.Setenv("PATH", bin+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("BIN", bin)
			env.Setenv("REDIS_URL", redisURL)
			// Keys of their own, so scripts can share one Redis.
			env.Setenv("QUEUE", fmt.Sprintf("script-%d-%d", os.Getpid(), n))
			port, err := freePort()
			if err != nil {
				return err
			}
			env.Setenv("HEALTH_PORT", strconv.Itoa(port))
			env.Values[procsKey{}] = map[string]*bgProc{}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"start":      cmdStart,
			"waitlog":    cmdWaitLog,
			"signal":     cmdSignal,
			"waitexit":   cmdWaitExit,
			"killworker": cmdKillWorker,
			"httpget":    cmdHTTPGet,
			"waitmetric": cmdWaitMetric,
		},
	})
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// scriptTimeout bounds every wait of a script command.
const scriptTimeout = 60 * time.Second

// bgProc is a process started with `start`: its output goes to
// $WORK/NAME.log, which waitlog reads while it runs.
type bgProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

type procsKey struct{}

func procs(ts *testscript.TestScript) map[string]*bgProc {
	m, _ := ts.Value(procsKey{}).(map[string]*bgProc)
	return m
}

// start NAME PROG [ARG...]: run PROG in the background with stdout and
// stderr to $WORK/NAME.log. It is killed when the script ends.
func cmdStart(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: start NAME PROG [ARG...]")
	}
	name := args[0]
	path := args[1]
	if filepath.Base(path) == path {
		path = filepath.Join(ts.Getenv("BIN"), path)
	}
	logPath := ts.MkAbs(name + ".log")
	f, err := os.Create(logPath)
	ts.Check(err)
	cmd := exec.Command(path, args[2:]...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = scriptEnv(ts)
	cmd.Stdout, cmd.Stderr = f, f
	ts.Check(cmd.Start())
	p := &bgProc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	procs(ts)[name] = p
	ts.Defer(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Process.Kill()
			<-p.done
			data, _ := os.ReadFile(logPath)
			ts.Logf("%s was still running; its log:\n%s", name, data)
		}
	})
}

// scriptEnv is the environment of the script's commands.
func scriptEnv(ts *testscript.TestScript) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "BIN", "REDIS_URL", "QUEUE", "HEALTH_PORT", "WORK"} {
		env = append(env, k+"="+ts.Getenv(k))
	}
	return env
}

func proc(ts *testscript.TestScript, name string) *bgProc {
	p := procs(ts)[name]
	if p == nil {
		ts.Fatalf("no process %q was started", name)
	}
	return p
}

// waitlog NAME REGEXP [COUNT]: wait until NAME's log matches REGEXP (COUNT
// times). With !, check that it does not match now.
func cmdWaitLog(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: waitlog NAME REGEXP [COUNT]")
	}
	p := proc(ts, args[0])
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	count := 1
	if len(args) == 3 {
		count, err = strconv.Atoi(args[2])
		ts.Check(err)
	}
	if neg {
		data, _ := os.ReadFile(p.log)
		if re.Match(data) {
			ts.Fatalf("%s log matches %q", args[0], args[1])
		}
		return
	}
	deadline := time.Now().Add(scriptTimeout)
	for {
		data, _ := os.ReadFile(p.log)
		if len(re.FindAllIndex(data, -1)) >= count {
			return
		}
		select {
		case <-p.done:
			data, _ = os.ReadFile(p.log)
			if len(re.FindAllIndex(data, -1)) >= count {
				return
			}
			ts.Fatalf("%s exited (%v) before its log matched %q %d times; log:\n%s", args[0], p.err, args[1], count, data)
		default:
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s log did not match %q %d times within %v; log:\n%s", args[0], args[1], count, scriptTimeout, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal NAME SIG: send SIG (TERM, INT, HUP, KILL) to NAME.
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: signal NAME TERM|INT|HUP|KILL")
	}
	sig := map[string]syscall.Signal{"TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP, "KILL": syscall.SIGKILL}[args[1]]
	if sig == 0 {
		ts.Fatalf("unknown signal %q", args[1])
	}
	ts.Check(proc(ts, args[0]).cmd.Process.Signal(sig))
}

// waitexit NAME [CODE]: wait until NAME exits, with status CODE (default 0).
func cmdWaitExit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: waitexit NAME [CODE]")
	}
	p := proc(ts, args[0])
	want := 0
	if len(args) == 2 {
		var err error
		want, err = strconv.Atoi(args[1])
		ts.Check(err)
	}
	select {
	case <-p.done:
	case <-time.After(scriptTimeout):
		ts.Fatalf("%s did not exit within %v", args[0], scriptTimeout)
	}
	if got := p.cmd.ProcessState.ExitCode(); got != want {
		data, _ := os.ReadFile(p.log)
		ts.Fatalf("%s exited with %d, want %d; log:\n%s", args[0], got, want, data)
	}
}

var readyPID = regexp.MustCompile(`worker ready: worker=(\d+) pid=(\d+)`)

// killworker NAME N: kill -9 the process of worker N of the supervisor
// NAME (the last one its log reported ready).
func cmdKillWorker(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: killworker NAME N")
	}
	data, err := os.ReadFile(proc(ts, args[0]).log)
	ts.Check(err)
	pid := 0
	for _, m := range readyPID.FindAllSubmatch(data, -1) {
		if string(m[1]) == args[1] {
			pid, _ = strconv.Atoi(string(m[2]))
		}
	}
	if pid == 0 {
		ts.Fatalf("worker %s of %s never reported ready", args[1], args[0])
	}
	ts.Logf("kill -9 %d", pid)
	ts.Check(syscall.Kill(pid, syscall.SIGKILL))
}

// httpget URL: GET URL and print the body; fails unless the status is 200
// (with !, unless it is not).
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: httpget URL")
	}
	if _, err := url.Parse(args[0]); err != nil {
		ts.Fatalf("bad URL: %v", err)
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(args[0])
	ts.Check(err)
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = io.Copy(&body, resp.Body)
	_, _ = ts.Stdout().Write(body.Bytes())
	if ok := resp.StatusCode == http.StatusOK; ok == neg {
		ts.Fatalf("GET %s: %s\n%s", args[0], resp.Status, body.String())
	}
}

// waitmetric URL FAMILY [LABEL=VALUE...] WANT: scrape URL until the series
// of FAMILY with those labels add up to WANT (a histogram counts its
// samples); fails after scriptTimeout with what it saw last.
func cmdWaitMetric(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: waitmetric URL FAMILY [LABEL=VALUE...] WANT")
	}
	want, err := strconv.ParseFloat(args[len(args)-1], 64)
	ts.Check(err)
	filters := map[string]string{}
	for _, kv := range args[2 : len(args)-1] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			ts.Fatalf("waitmetric: %q is not LABEL=VALUE", kv)
		}
		filters[k] = v
	}
	deadline := time.Now().Add(scriptTimeout)
	var got float64
	for {
		got, err = sumMetric(args[0], args[1], filters)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitmetric %s %v: want %v, got %v (error: %v)", args[1], filters, want, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sumMetric(url, family string, filters map[string]string) (float64, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	f := fams[family]
	if f == nil {
		return 0, fmt.Errorf("no family %s", family)
	}
	var sum float64
next:
	for _, m := range f.Metric {
		for k, v := range filters {
			match := false
			for _, lp := range m.Label {
				match = match || (lp.GetName() == k && lp.GetValue() == v)
			}
			if !match {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum, nil
}
