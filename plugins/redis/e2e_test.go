package taskiqredis

// End-to-end tests: the host (core.Load with a taskiq.hcl) starts this
// plugin's binary as real child processes, a worker runs tasks through them,
// and the tests assert what reaches Redis and what the App sees. They run
// against miniredis, or against real Redis when TASKIQ_REDIS_URL is set.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// within returns a context that ends after d or with the test.
func within(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// baseConfig is a stream broker on queue q and a result backend, each served
// by its own copy of the plugin binary.
func baseConfig(t testing.TB, e *testEnv, q string) hclConfig {
	return hclConfig{
		brokerPath:  pluginCopy(t, "taskiq-redis"),
		resultsPath: pluginCopy(t, "taskiq-redis-results"),
		url:         e.url,
		// A short block lets streams notice Close and reclaim promptly.
		broker:  map[string]any{"mode": "stream", "queue": q, "block": "200ms"},
		results: map[string]any{"result_ttl": "10m"},
		worker:  map[string]any{},
	}
}

// waitAll waits for every task's result and returns the decoded values.
func waitAll[R any](t testing.TB, ctx context.Context, tasks []*core.AsyncTask[R]) []R {
	t.Helper()
	return startWaiting(ctx, tasks)(t)
}

// startWaiting starts one WaitResult per task at once; the returned function
// waits for them all, fails the test for any missing result and returns the
// values.
func startWaiting[R any](ctx context.Context, tasks []*core.AsyncTask[R]) func(t testing.TB) []R {
	out := make([]R, len(tasks))
	errs := make([]error, len(tasks))
	var wg sync.WaitGroup
	for i, at := range tasks {
		wg.Go(func() {
			res, err := at.WaitResult(ctx, 0)
			if err != nil {
				errs[i] = err
				return
			}
			out[i], errs[i] = res.Value()
		})
	}
	return func(t testing.TB) []R {
		t.Helper()
		wg.Wait()
		return checkWaited(t, tasks, out, errs)
	}
}

func checkWaited[R any](t testing.TB, tasks []*core.AsyncTask[R], out []R, errs []error) []R {
	t.Helper()
	lost := 0
	for i, err := range errs {
		if err != nil {
			if lost < 5 {
				t.Errorf("task %d (%s): %v", i, tasks[i].TaskID, err)
			}
			lost++
		}
	}
	require.Zero(t, lost, "%d of %d tasks have no result", lost, len(tasks))
	return out
}

// requireStreamDrained waits until q has no entries and no pending deliveries:
// every message was acked (and deleted).
func requireStreamDrained(t testing.TB, e *testEnv, q string) {
	t.Helper()
	ctx := within(t, 30*time.Second)
	require.Eventually(t, func() bool {
		n, err := e.rdb.XLen(ctx, q).Result()
		if err != nil || n != 0 {
			return false
		}
		p, err := e.rdb.XPending(ctx, q, defaultGroup).Result()
		return err == nil && p.Count == 0
	}, 20*time.Second, 10*time.Millisecond, "stream %s still holds entries or pending deliveries", q)
}

// TestE2ERoundTrip kicks 200 tasks through the stream broker process and
// reads every result through the Redis result backend process. Every waiter
// starts before the worker and poll_fallback is an hour, so a waiter whose
// first read missed its result can only have been woken by the backend's
// pub/sub notification.
func TestE2ERoundTrip(t *testing.T) {
	t.Parallel()
	e := e2eEnv(t)
	q := e.queue("e2e-roundtrip")
	cfg := baseConfig(t, e, q)
	cfg.results["poll_fallback"] = "1h"
	cfg.worker["max_async_tasks"] = 50
	app := loadApp(t, cfg.write(t, t.TempDir()))
	add := core.MustTask[int](app, "e2e.add", func(a, b int) (int, error) { return a + b, nil })

	const n = 200
	ctx := within(t, 90*time.Second)
	tasks := make([]*core.AsyncTask[int], n)
	for i := range n {
		at, err := add.Kiq(ctx, i, 1000)
		require.NoError(t, err)
		tasks[i] = at
	}
	ready, err := tasks[0].IsReady(ctx)
	require.NoError(t, err)
	require.False(t, ready, "no worker runs yet")

	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	collect := startWaiting(waitCtx, tasks)
	start := time.Now()
	runWorker(t, app, nil)
	got := collect(t)
	elapsed := time.Since(start)
	for i, v := range got {
		require.Equal(t, i+1000, v, "task %d", i)
	}
	t.Logf("%d results arrived through WaitResult %v after the worker started (poll_fallback 1h: notifications, not polling)", n, elapsed.Round(time.Millisecond))
	requireStreamDrained(t, e, q)
}

// execution is one line of the executions list a worker process writes.
type execution struct {
	taskID, worker string
	attempt        int
	at             time.Time
}

func readExecutions(t testing.TB, ctx context.Context, rdb *redis.Client, queue string) []execution {
	t.Helper()
	lines, err := rdb.LRange(ctx, executionsKey(queue), 0, -1).Result()
	require.NoError(t, err)
	out := make([]execution, 0, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		require.Len(t, f, 4, "execution line %q", l)
		a, err := strconv.Atoi(f[2])
		require.NoError(t, err)
		ms, err := strconv.ParseInt(f[3], 10, 64)
		require.NoError(t, err)
		out = append(out, execution{taskID: f[0], worker: f[1], attempt: a, at: time.UnixMilli(ms)})
	}
	return out
}

// pendingTaskIDs lists the task ids of the entries pending for consumer in
// q's group: deliveries it received and never acked.
func pendingTaskIDs(t testing.TB, ctx context.Context, rdb *redis.Client, q, consumer string) map[string]bool {
	t.Helper()
	ps, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: q, Group: defaultGroup, Start: "-", End: "+", Count: 10000, Consumer: consumer}).Result()
	require.NoError(t, err)
	out := map[string]bool{}
	for _, p := range ps {
		msgs, err := rdb.XRange(ctx, q, p.ID, p.ID).Result()
		require.NoError(t, err)
		if len(msgs) == 0 {
			continue // acked and deleted meanwhile by the dying plugin
		}
		var m struct {
			TaskID string `json:"task_id"`
		}
		data, _ := msgs[0].Values["data"].(string)
		require.NoError(t, json.Unmarshal([]byte(data), &m))
		out[m.TaskID] = true
	}
	return out
}

// TestE2EWorkerSIGKILL runs two worker processes, kills one with SIGKILL while
// it runs tasks, and proves: its plugin processes exit by themselves; no task
// is lost; a task runs twice only if it was in flight (unacked) on the killed
// worker, the second time on the survivor as a reclaimed delivery (attempt 2);
// and nothing runs twice on one worker or more than twice at all, so the
// reclaim itself duplicates nothing.
func TestE2EWorkerSIGKILL(t *testing.T) {
	t.Parallel()
	e := e2eEnv(t)
	q := e.queue("e2e-sigkill")
	const lease = 5 * time.Second
	cfg := baseConfig(t, e, q)
	// Each worker process names its consumer after itself, so the test can
	// read what the killed one left pending.
	cfg.broker["consumer_name"] = hclExpr(`env("` + envE2EWorker + `", "")`)
	cfg.broker["lease"] = lease.String()
	cfg.worker["lease"] = lease.String()
	cfg.worker["max_async_tasks"] = 10
	path := cfg.write(t, t.TempDir())
	t.Cleanup(func() { _ = e.rdb.Del(context.Background(), executionsKey(q)).Err() })

	kicker := loadApp(t, path)
	record := core.MustTask[string](kicker, recordTask, func(context.Context, int) (string, error) {
		return "", errors.New("the kicking App runs no worker")
	})
	a := startWorkerProcess(t, "A", path, e.url, q, 300*time.Millisecond)
	b := startWorkerProcess(t, "B", path, e.url, q, 300*time.Millisecond)
	var aPlugins []int
	require.Eventually(t, func() bool {
		aPlugins = childrenOf(a.cmd.Process.Pid, "")
		return len(aPlugins) == 2
	}, 10*time.Second, 10*time.Millisecond, "worker A runs a broker and a result backend plugin")

	const n = 100
	ctx := within(t, 2*time.Minute)
	tasks := make([]*core.AsyncTask[string], n)
	for i := range n {
		at, err := record.Kiq(ctx, i)
		require.NoError(t, err)
		tasks[i] = at
	}
	require.Eventually(t, func() bool {
		started := 0
		for _, x := range readExecutions(t, ctx, e.rdb, q) {
			if x.worker == "A" {
				started++
			}
		}
		return started >= 15
	}, 30*time.Second, 5*time.Millisecond, "worker A never got going")

	require.NoError(t, a.cmd.Process.Signal(syscall.SIGKILL))
	killedAt := time.Now()
	// Entries become reclaimable a whole lease after A's last extension
	// (the worker extends several times per lease), so this snapshot, taken
	// at once, still holds every delivery A had started and not acked.
	unackedAtKill := pendingTaskIDs(t, ctx, e.rdb, q, "A")
	require.Less(t, time.Since(killedAt), lease/2, "the snapshot of A's pending entries came too late to be exact")
	require.Error(t, a.wait(t, 10*time.Second), "worker A dies of SIGKILL")
	require.Eventually(t, func() bool {
		for _, pid := range aPlugins {
			if !processGone(pid) {
				return false
			}
		}
		return true
	}, 15*time.Second, 20*time.Millisecond, "the plugin processes %v of the killed worker A outlived it", aPlugins)
	pluginsGone := time.Since(killedAt)
	// A's broker plugin may still have completed a read between the kill and
	// its exit: those entries are pending for A too, never ran there, and
	// come back through reclaim as well.
	pendingForA := pendingTaskIDs(t, ctx, e.rdb, q, "A")
	require.Less(t, time.Since(killedAt), lease/2, "A's plugins exited too late for an exact snapshot of its pending entries")
	for id := range unackedAtKill {
		pendingForA[id] = true
	}

	finals := waitAll(t, within(t, 90*time.Second), tasks)
	completed := time.Since(killedAt)

	execs := readExecutions(t, ctx, e.rdb, q)
	perTask := map[string][]execution{}
	for _, x := range execs {
		perTask[x.taskID] = append(perTask[x.taskID], x)
	}
	var onA, onB, twice, reclaimedUnstarted, savedNotAcked int
	for i, at := range tasks {
		xs := perTask[at.TaskID]
		require.NotEmpty(t, xs, "task %s has a result but no execution", at.TaskID)
		byWorker := map[string]execution{}
		for _, x := range xs {
			_, dup := byWorker[x.worker]
			require.False(t, dup, "task %s ran twice on worker %s: %v", at.TaskID, x.worker, xs)
			byWorker[x.worker] = x
		}
		xa, ranA := byWorker["A"]
		xb, ranB := byWorker["B"]
		if ranA {
			onA++
		}
		if ranB {
			onB++
		}
		switch {
		case ranA && ranB:
			twice++
			require.True(t, unackedAtKill[at.TaskID], "task %s ran on A and B but A had acked it: the reclaim duplicated it", at.TaskID)
			require.Equal(t, 1, xa.attempt)
			require.Equal(t, 2, xb.attempt, "task %s ran again on B other than by reclaim", at.TaskID)
			// WaitResult returns the first stored result: A's when A saved
			// it and died before its ack reached Redis (at-least-once).
			require.Contains(t, []string{"A", "B"}, finals[i])
			if finals[i] == "A" {
				savedNotAcked++
			}
		case ranA:
			require.Equal(t, "A", finals[i])
		default:
			require.Equal(t, "B", finals[i])
			if xb.attempt > 1 {
				reclaimedUnstarted++
				require.True(t, pendingForA[at.TaskID], "task %s was delivered again but A never held it", at.TaskID)
			}
		}
	}
	require.Equal(t, n+twice, len(execs), "executions of unknown tasks were recorded")
	require.Positive(t, twice, "the kill caught no task in flight, so nothing was reclaimed")
	t.Logf("%d tasks, %d executions: A ran %d before SIGKILL (%d unacked at the kill, %d pending for A once its plugins exited), B ran %d; "+
		"%d ran twice (on A, then reclaimed by B with attempt 2; %d of them had A's result saved but not acked), %d were reclaimed from A without having started there; "+
		"A's plugins exited %v after the kill, all results %v after it",
		n, len(execs), onA, len(unackedAtKill), len(pendingForA), onB, twice, savedNotAcked, reclaimedUnstarted,
		pluginsGone.Round(time.Millisecond), completed.Round(time.Millisecond))
	requireStreamDrained(t, e, q)

	// The survivor shuts down cleanly on SIGTERM.
	require.NoError(t, b.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, b.wait(t, 30*time.Second), "worker B stops cleanly on SIGTERM")
}

// TestE2EPluginProcessKilled kills the broker plugin process, and then in a
// second run the result backend plugin process, while a worker consumes 500
// tasks: the host starts a new process, and every task completes.
func TestE2EPluginProcessKilled(t *testing.T) {
	t.Parallel()
	for _, victim := range []string{"broker", "result_backend"} {
		t.Run(victim, func(t *testing.T) {
			t.Parallel()
			e := e2eEnv(t)
			q := e.queue("e2e-kill-" + victim)
			cfg := baseConfig(t, e, q)
			cfg.broker["lease"] = "2s"
			cfg.worker["lease"] = "2s"
			cfg.worker["max_async_tasks"] = 10
			app := loadApp(t, cfg.write(t, t.TempDir()))
			var executions atomic.Int64
			double := core.MustTask[int](app, "e2e.double", func(ctx context.Context, n int) (int, error) {
				executions.Add(1)
				select {
				case <-time.After(10 * time.Millisecond):
				case <-ctx.Done():
				}
				return 2 * n, nil
			})

			const n = 500
			ctx := within(t, 2*time.Minute)
			tasks := make([]*core.AsyncTask[int], n)
			for i := range n {
				at, err := double.Kiq(ctx, i)
				require.NoError(t, err)
				tasks[i] = at
			}
			path := cfg.brokerPath
			if victim == "result_backend" {
				path = cfg.resultsPath
			}
			old := onlyChild(t, path)
			runWorker(t, app, nil)
			require.Eventually(t, func() bool { return executions.Load() >= 100 }, 30*time.Second, time.Millisecond)
			require.NoError(t, syscall.Kill(old, syscall.SIGKILL))
			killedAt := time.Now()
			before := executions.Load()

			var restarted int
			require.Eventually(t, func() bool {
				for _, pid := range childrenOf(os.Getpid(), path) {
					if pid != old {
						restarted = pid
						return true
					}
				}
				return false
			}, 30*time.Second, 5*time.Millisecond, "the host did not restart the %s plugin", victim)
			restartedAfter := time.Since(killedAt)

			got := waitAll(t, within(t, 90*time.Second), tasks)
			for i, v := range got {
				require.Equal(t, 2*i, v)
			}
			require.True(t, processGone(old))
			completed := time.Since(killedAt)
			// Deliveries whose ack died with the broker process are
			// reclaimed after the lease and run again: the stream drains.
			requireStreamDrained(t, e, q)
			t.Logf("killed the %s plugin (pid %d) after %d executions; pid %d replaced it %v later; all %d results stored %v after the kill; stream drained %v after it, with %d executions (%d ran twice)",
				victim, old, before, restarted, restartedAfter.Round(time.Millisecond), n,
				completed.Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond),
				executions.Load(), executions.Load()-n)
		})
	}
}

// redisServer is a redis-server process of the test's own.
type redisServer struct {
	cmd  *exec.Cmd
	out  *logBuffer
	done chan error
}

// startRedisServer runs redis-server on port with an append-only file in dir
// and waits until it answers.
func startRedisServer(t testing.TB, bin string, port int, dir string) *redisServer {
	t.Helper()
	s := &redisServer{out: &logBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--appendonly", "yes", "--dir", dir, "--save", "", "--daemonize", "no")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	require.NoError(t, s.cmd.Start())
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
		s.done <- nil
		if t.Failed() {
			t.Logf("redis-server output:\n%s", tail(s.out.String(), 4000))
		}
	})
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1})
	defer rdb.Close()
	require.Eventually(t, func() bool {
		return rdb.Ping(context.Background()).Err() == nil
	}, 20*time.Second, 10*time.Millisecond, "redis-server did not start:\n%s", s.out)
	return s
}

// TestE2ERedisRestart shuts Redis down while a worker runs tasks and starts
// it again (same port, same append-only file): the worker never exits, kicks
// during the outage fail with sdk.ErrUnavailable, and every task kicked
// before or after the outage completes.
func TestE2ERedisRestart(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		requireNotCI(t, "redis-server is not on PATH: CI must run the Redis restart test; install redis-server")
		t.Skip("redis-server is not on PATH")
	}
	dir, port := t.TempDir(), freePort(t)
	srv := startRedisServer(t, bin, port, dir)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	e := &testEnv{url: "redis://" + addr + "/0", rdb: redis.NewClient(&redis.Options{Addr: addr})}
	t.Cleanup(func() { _ = e.rdb.Close() })

	q := "e2e-restart"
	cfg := baseConfig(t, e, q)
	cfg.broker["lease"] = "2s"
	cfg.worker["lease"] = "2s"
	cfg.worker["max_async_tasks"] = 5
	app := loadApp(t, cfg.write(t, t.TempDir()))
	var executions atomic.Int64
	double := core.MustTask[int](app, "e2e.double", func(ctx context.Context, n int) (int, error) {
		executions.Add(1)
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
		}
		return 2 * n, nil
	})
	worker := runWorker(t, app, nil)

	ctx := within(t, 3*time.Minute)
	const batch = 100
	var tasks []*core.AsyncTask[int]
	kickBatch := func(from int) {
		for i := from; i < from+batch; i++ {
			at, err := double.Kiq(ctx, i)
			require.NoError(t, err, "kick %d", i)
			tasks = append(tasks, at)
		}
	}
	kickBatch(0)
	require.Eventually(t, func() bool { return executions.Load() >= 20 }, 30*time.Second, time.Millisecond)

	// SHUTDOWN writes the append-only file; the connection closes on it.
	_ = e.rdb.Shutdown(ctx).Err()
	select {
	case <-srv.done:
		srv.done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("redis-server did not shut down")
	}
	atShutdown := executions.Load()

	start := time.Now()
	_, kickErr := double.Kiq(ctx, -1)
	kickTook := time.Since(start)
	require.Error(t, kickErr, "a kick while Redis is down must fail")
	require.ErrorIs(t, kickErr, sdk.ErrUnavailable)
	start = time.Now()
	_, readErr := tasks[0].GetResult(ctx)
	readTook := time.Since(start)
	require.Error(t, readErr)
	require.ErrorIs(t, readErr, sdk.ErrUnavailable)
	t.Logf("kick during the outage failed after %v: %v", kickTook.Round(time.Millisecond), kickErr)
	t.Logf("GetResult during the outage failed after %v: %v", readTook.Round(time.Millisecond), readErr)

	startRedisServer(t, bin, port, dir)
	// After a run of failed dials go-redis's pool fails fast and re-dials
	// once a second in the background, so kicks may go on failing for up
	// to a second after Redis is back; then they must all succeed.
	start = time.Now()
	var probe *core.AsyncTask[int]
	require.Eventually(t, func() bool {
		probe, err = double.Kiq(ctx, 2*batch)
		return err == nil
	}, 15*time.Second, 50*time.Millisecond, "kicks still fail after Redis is back: %v", err)
	t.Logf("the first kick after the restart succeeded %v after Redis answered", time.Since(start).Round(time.Millisecond))
	kickBatch(batch)
	tasks = append(tasks, probe)
	got := waitAll(t, within(t, 90*time.Second), tasks)
	for i, v := range got {
		require.Equal(t, 2*i, v)
	}
	select {
	case err := <-worker:
		t.Fatalf("the worker exited during the outage: %v", err)
	default:
	}
	t.Logf("%d tasks completed (%d executions; %d done before the shutdown)", len(tasks), executions.Load(), atShutdown)
	requireStreamDrained(t, e, q)
}

// pythonTaskMessage builds a message as Python taskiq writes it: json.dumps with
// ", " / ": " separators, ASCII escapes, labels as strings with their types.
func pythonTaskMessage(taskID, taskName, args, kwargs string) string {
	return `{"task_id": "` + taskID + `", "task_name": "` + taskName + `", ` +
		`"labels": {"retry_on_error": "True", "max_retries": "3", "timeout": "5.5", "note": "caf\u00e9", "custom": "{'a': 1}"}, ` +
		`"labels_types": {"retry_on_error": 5, "max_retries": 2, "timeout": 4, "note": 3, "custom": 1}, ` +
		`"args": ` + args + `, "kwargs": ` + kwargs + `}`
}

// valueError is a task error that names itself like a Python ValueError.
type valueError struct{ cause error }

func (e *valueError) Error() string     { return "boom" }
func (e *valueError) ErrorType() string { return "ValueError" }
func (e *valueError) ErrorArgs() []any  { return []any{"boom", 42} }
func (e *valueError) Unwrap() error     { return e.cause }

// TestE2EPythonWireCompat feeds a worker messages written with XADD exactly
// as Python taskiq-redis writes them, and reads the stored results raw.
func TestE2EPythonWireCompat(t *testing.T) {
	t.Parallel()
	e := e2eEnv(t)
	q := e.queue("e2e-wire")
	cfg := baseConfig(t, e, q)
	delete(cfg.results, "result_ttl")
	app := loadApp(t, cfg.write(t, t.TempDir()))
	core.MustTask[int](app, "tests.tasks:add", func(a, b int, round bool) (int, error) {
		if !round {
			return 0, errors.New("round must be true")
		}
		return a + b, nil
	}, core.WithParamNames("a", "b", "round"))
	core.MustTask[int](app, "tests.tasks:fail", func(ctx context.Context, what string) (int, error) {
		return 0, &valueError{cause: errors.New("cause: " + what)}
	}, core.WithParamNames("what"))
	runWorker(t, app, nil)

	ctx := within(t, 60*time.Second)
	okID, failID := core.NewTaskID(), core.NewTaskID()
	for _, m := range []string{
		pythonTaskMessage(okID, "tests.tasks:add", `[1]`, `{"b": 2, "round": true}`),
		pythonTaskMessage(failID, "tests.tasks:fail", `[]`, `{"what": "disk"}`),
	} {
		require.NoError(t, e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: q, Values: map[string]any{"data": m}}).Err())
	}

	wantLabels := map[string]any{"retry_on_error": true, "max_retries": float64(3), "timeout": 5.5, "note": "café", "custom": "{'a': 1}"}
	readRaw := func(id string) map[string]json.RawMessage {
		var raw string
		require.Eventually(t, func() bool {
			v, err := e.rdb.Get(ctx, id).Result()
			raw = v
			return err == nil
		}, 30*time.Second, 5*time.Millisecond, "no result under key %s", id)
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(raw), &fields), raw)
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		require.ElementsMatch(t, []string{"is_err", "log", "return_value", "execution_time", "labels", "error"}, keys, raw)
		var labels map[string]any
		require.NoError(t, json.Unmarshal(fields["labels"], &labels))
		require.Equal(t, wantLabels, labels)
		var et float64
		require.NoError(t, json.Unmarshal(fields["execution_time"], &et))
		require.GreaterOrEqual(t, et, 0.0)
		require.Less(t, et, 5.0)
		require.JSONEq(t, "null", string(fields["log"]))
		t.Logf("stored under %s: %s", id, raw)
		return fields
	}

	ok := readRaw(okID)
	require.JSONEq(t, "false", string(ok["is_err"]))
	require.JSONEq(t, "3", string(ok["return_value"]))
	require.JSONEq(t, "null", string(ok["error"]))

	failed := readRaw(failID)
	require.JSONEq(t, "true", string(failed["is_err"]))
	require.JSONEq(t, "null", string(failed["return_value"]))
	require.JSONEq(t, `{"exc_type": "ValueError", "exc_message": ["boom", 42],
		"exc_module": "github.com/taskiq-go/taskiq/plugins/redis",
		"exc_cause": {"exc_type": "Error", "exc_message": ["cause: disk"], "exc_module": "errors",
			"exc_cause": null, "exc_context": null, "exc_suppress_context": false},
		"exc_context": null, "exc_suppress_context": false}`, string(failed["error"]))
	requireStreamDrained(t, e, q)
}

// TestE2EDelayAndDeadLetter: a task kicked with the delay label runs after
// the delay, not before; a message naming an unknown task and bytes that are
// no message at all end in the dead-letter stream with their reasons.
func TestE2EDelayAndDeadLetter(t *testing.T) {
	t.Parallel()
	e := e2eEnv(t)
	q := e.queue("e2e-delay")
	cfg := baseConfig(t, e, q)
	cfg.broker["delay_poll"] = "20ms"
	app := loadApp(t, cfg.write(t, t.TempDir()))
	ran := make(chan time.Time, 1)
	stamp := core.MustTask[string](app, "e2e.stamp", func(s string) (string, error) {
		ran <- time.Now()
		return s, nil
	})
	runWorker(t, app, nil)
	ctx := within(t, 60*time.Second)

	kicked := time.Now()
	at, err := stamp.Kicker().WithLabels(map[string]any{wire.LabelDelay: 1}).Kiq(ctx, "late")
	require.NoError(t, err)
	ready, err := at.IsReady(ctx)
	require.NoError(t, err)
	require.False(t, ready, "a task delayed by 1s is not done right after its kick")
	res, err := at.WaitResult(ctx, 30*time.Second)
	require.NoError(t, err)
	v, err := res.Value()
	require.NoError(t, err)
	require.Equal(t, "late", v)
	ranAt := <-ran
	// The broker schedules "due = its clock at the kick + 1s" in whole
	// milliseconds; the kick started earlier on the same clock.
	require.GreaterOrEqual(t, ranAt.Sub(kicked), 999*time.Millisecond, "the delayed task ran early")
	t.Logf("delay=1 task ran %v after its kick", ranAt.Sub(kicked).Round(time.Millisecond))

	unknown := `{"task_id": "` + core.NewTaskID() + `", "task_name": "no.such.task", "labels": {}, "labels_types": {}, "args": [], "kwargs": {}}`
	garbage := "\xff\x00 this is not a message"
	for _, data := range []string{unknown, garbage} {
		require.NoError(t, e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: q, Values: []any{"data", data}}).Err())
	}
	dead := q + ":dead"
	var entries []redis.XMessage
	require.Eventually(t, func() bool {
		entries, err = e.rdb.XRange(ctx, dead, "-", "+").Result()
		return err == nil && len(entries) >= 2
	}, 30*time.Second, 10*time.Millisecond, "the dead-letter stream %s did not get both messages", dead)
	require.Len(t, entries, 2)
	reasons := map[string]string{}
	for _, m := range entries {
		reasons[m.Values["data"].(string)] = m.Values["reason"].(string)
		require.Equal(t, q, m.Values["queue"])
	}
	require.Contains(t, reasons, unknown)
	require.Contains(t, reasons, garbage, "the garbage bytes are kept as they were")
	require.Contains(t, reasons[unknown], `unknown task name "no.such.task"`)
	require.Contains(t, reasons[garbage], "unparseable message")
	t.Logf("dead letters: %q / %q", reasons[unknown], reasons[garbage])
	requireStreamDrained(t, e, q)
}

// savedCounter is an in-process post_save middleware: it counts stored
// results, so a benchmark knows when all its tasks are done.
type savedCounter struct {
	n    atomic.Int64
	want atomic.Int64
	done chan struct{}
}

func (c *savedCounter) PostSave(context.Context, *wire.Message, *wire.Result) error {
	if c.n.Add(1) == c.want.Load() {
		close(c.done)
	}
	return nil
}

// BenchmarkEndToEndRedis measures tasks per second through the plugin
// processes (stream broker and result backend), with the worker in this
// process (max_async_tasks 256) and 8 goroutines kicking no-op tasks; a
// task counts once its result is stored. Real Redis when TASKIQ_REDIS_URL is
// set, else miniredis.
func BenchmarkEndToEndRedis(b *testing.B) {
	e := e2eEnv(b)
	q := e.queue("e2e-bench")
	cfg := baseConfig(b, e, q)
	cfg.worker["max_async_tasks"] = 256
	saved := &savedCounter{done: make(chan struct{})}
	saved.want.Store(int64(b.N))
	app := loadApp(b, cfg.write(b, b.TempDir()), core.WithMiddleware(saved))
	noop := core.MustTask[int](app, "e2e.noop", func(n int) (int, error) { return n, nil })
	runWorker(b, app, nil)
	ctx := within(b, 10*time.Minute)

	b.ResetTimer()
	const kickers = 8
	var next atomic.Int64
	var wg sync.WaitGroup
	for range kickers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if _, err := noop.Kiq(ctx, int(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-saved.done:
	case <-ctx.Done():
		b.Fatalf("only %d of %d results stored", saved.n.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}
