package dashboard_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/core/dashboard"
)

// The browser test drives Debian's chromium, headless, against the
// dashboard of an App loaded from taskiq.hcl with the taskiq-redis plugin
// as a process, a real worker (RunWorker) and the Redis of
// TASKIQ_REDIS_URL: list, search, open a task, re-kick dead letters (a
// selection from the list, and one from its page) and see them complete.
// It runs in `make integration`. Without TASKIQ_REDIS_URL or chromium it
// is skipped, except in CI (CI=true), where that is a failure.
//
// TASKIQ_DASHBOARD_SCREENSHOTS=DIR writes a screenshot of each view there
// (docs/dashboard holds the committed ones).

const chromiumPath = "/usr/bin/chromium"

func needService(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI", what)
	}
	t.Skipf("%s is not available", what)
}

// buildRedisPlugin builds the taskiq-redis binary into dir.
func buildRedisPlugin(t testing.TB, dir string) {
	t.Helper()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "taskiq-redis"), "../../plugins/redis/cmd/taskiq-redis").CombinedOutput()
	require.NoError(t, err, "go build taskiq-redis: %s", out)
}

func randomName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "dashboard-e2e-" + hex.EncodeToString(b)
}

// loadRedisApp writes a taskiq.hcl for queue q on Redis url, with the
// extra blocks, and loads it.
func loadRedisApp(t testing.TB, url, q string, extra ...string) *core.App {
	t.Helper()
	dir := t.TempDir()
	buildRedisPlugin(t, dir)
	cfg := fmt.Sprintf(`plugin_dir = %q
broker "default" {
  plugin = "taskiq-redis"
  config {
    url             = %q
    queue           = %q
    block           = "100ms"
    lease           = "5s"
    inspect_refresh = "200ms"
  }
}
result_backend "default" {
  plugin = "taskiq-redis"
  config {
    url    = %q
    prefix = %q
  }
}
`, dir, url, q, url, q) + strings.Join(extra, "\n")
	path := filepath.Join(dir, "taskiq.hcl")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	app, err := core.Load(context.Background(), path, core.WithLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr})))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = app.Close(ctx)
	})
	return app
}

func TestBrowser(t *testing.T) {
	url := os.Getenv("TASKIQ_REDIS_URL")
	if url == "" {
		needService(t, "Redis (TASKIQ_REDIS_URL)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		needService(t, "chromium ("+chromiumPath+", apt-get install -y chromium)")
	}
	q := randomName()
	app := loadRedisApp(t, url, q, fmt.Sprintf(`schedule_source "redis" {
  plugin = "taskiq-redis"
  config {
    url    = %q
    prefix = "%s:schedule"
  }
}
schedule "nightly-report" {
  task   = "e2e.build_report"
  args   = ["acme"]
  labels = { queue_name = "%s-reports" }
  cron   = "30 2 * * *"
}
`, url, q, q))
	ctx := context.Background()

	var broken atomic.Bool
	broken.Store(true)
	flaky := core.MustTask[int](app, "e2e.sync_invoices", func(ctx context.Context, n int) (int, error) {
		if broken.Load() {
			return 0, core.ContextFrom(ctx).Reject()
		}
		return n * 2, nil
	})
	add := core.MustTask[int](app, "e2e.add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
	report := core.MustTask[string](app, "e2e.build_report", func(ctx context.Context, tenant string) (string, error) { return tenant, nil })

	wctx, stop := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- app.RunWorker(wctx, core.WorkerOptions{Ready: func() { close(ready) }}) }()
	t.Cleanup(func() { stop(); <-done })
	<-ready

	for i := range 3 {
		at, err := add.Kiq(ctx, i, 40)
		require.NoError(t, err)
		_, err = at.WaitResult(ctx, 20*time.Second)
		require.NoError(t, err)
	}
	for i, id := range []string{"inv-dead-1", "inv-dead-2", "inv-dead-3"} {
		_, err := flaky.Kicker().WithTaskID(id).WithLabels(map[string]any{"tenant": "acme"}).Kiq(ctx, 100+i)
		require.NoError(t, err)
	}
	// Messages for a queue no worker listens to stay queued, and delayed
	// ones wait: every tab has something to show.
	for _, tenant := range []string{"acme", "globex", "initech", "umbrella"} {
		_, err := report.Kicker().WithLabels(map[string]any{core.LabelQueueName: q + "-reports", "tenant": tenant}).Kiq(ctx, tenant)
		require.NoError(t, err)
	}
	_, err := add.Kicker().WithLabels(map[string]any{core.LabelDelay: 3600}).Kiq(ctx, 1, 2)
	require.NoError(t, err)
	in, err := app.Inspector("")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		p, err := in.Messages(ctx, core.MessageQuery{State: core.StateDead})
		return err == nil && len(p.Messages) == 3
	}, 20*time.Second, 50*time.Millisecond, "three dead letters")

	shots := os.Getenv("TASKIQ_DASHBOARD_SCREENSHOTS")
	h, err := dashboard.New(app, dashboard.Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, chromedp.WindowSize(1280, 860), chromedp.Flag("headless", "new"))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancelTimeout := context.WithTimeout(bctx, 90*time.Second)
	defer cancelTimeout()

	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if shots == "" {
				return nil
			}
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		})
	}
	text := func(sel string) string {
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err)
		return s
	}

	// List: the queues view shows the queue with its dead letters.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/queues"),
		chromedp.WaitVisible(chromedp.CSS("#queues"))))
	// For the screenshot, a few refreshes while reports pile up draw the
	// sparkline.
	for i := 0; shots != "" && i < 8; i++ {
		for j := range 4 * i {
			if _, err := add.Kiq(ctx, j, i); err != nil {
				require.NoError(t, err)
			}
		}
		for j := range i {
			tenant := []string{"hooli", "piedpiper", "aviato", "raviga"}[j%4]
			_, err := report.Kicker().WithLabels(map[string]any{core.LabelQueueName: q + "-reports", "tenant": tenant}).Kiq(ctx, tenant)
			require.NoError(t, err)
		}
		time.Sleep(250 * time.Millisecond) // the counts cache refreshes every 200ms
		require.NoError(t, chromedp.Do(bctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#queues"))))
	}
	queues := text("#queues")
	require.Contains(t, queues, q)
	require.Contains(t, queues, q+"-reports")
	require.NoError(t, chromedp.Do(bctx, shot("queues")))

	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/tasks?queue="+q+"-reports"),
		chromedp.WaitVisible(chromedp.CSS("#messages")), shot("tasks")))
	require.Contains(t, text("#messages"), "e2e.build_report")

	// Search the dead letters of the queue, server side.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/tasks?state=dead&queue="+q),
		chromedp.WaitVisible(chromedp.CSS("#messages")),
		chromedp.SendKeys(chromedp.CSS(`input[name="q"]`), "101"),
		chromedp.Click(chromedp.CSS("#search-go")),
		chromedp.WaitVisible(chromedp.CSS("#clear-search")))) // only a filtered page has it
	found := text("#messages")
	require.Contains(t, found, "inv-dead-2", "the search by argument finds the second dead letter")
	require.NotContains(t, found, "inv-dead-1")

	// Re-kick a selection from the list.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(`input[name="ref"]`)),
		chromedp.Func(func(context.Context, *chromedp.Target) error { broken.Store(false); return nil }),
		chromedp.Click(chromedp.CSS("#requeue-selected")),
		chromedp.WaitVisible(chromedp.CSS("#flash"))))
	require.Contains(t, text("#flash"), "1 message re-kicked")
	res, err := core.ResultOf[int](app, "inv-dead-2").WaitResult(ctx, 20*time.Second)
	require.NoError(t, err)
	require.EqualValues(t, 202, res.ReturnValue, "the re-kicked dead letter ran")

	// Open a task from the dead list and re-kick it from its page.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/tasks?state=dead&queue="+q),
		chromedp.WaitVisible(chromedp.CSS("#messages")), shot("dead"),
		chromedp.Click(chromedp.Search(`//a[text()="inv-dead-1"]`)),
		chromedp.WaitVisible(chromedp.CSS("#overview")), shot("task-dead")))
	require.Equal(t, "dead", strings.TrimSpace(text("#state")))
	require.Contains(t, text("#labels"), `"tenant": "acme"`)
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS("#requeue-task")),
		chromedp.WaitVisible(chromedp.CSS("#flash"))))
	require.Contains(t, text("#flash"), "1 message re-kicked")

	// See it complete: the task page shows the result once it is stored.
	deadline := time.Now().Add(20 * time.Second)
	for {
		state := strings.TrimSpace(text("#state"))
		if state == "finished" {
			break
		}
		require.True(t, time.Now().Before(deadline), "the re-kicked task did not complete; its state is %q", state)
		time.Sleep(100 * time.Millisecond)
		require.NoError(t, chromedp.Do(bctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#overview"))))
	}
	require.Equal(t, "200", strings.TrimSpace(text("#result")))
	require.NoError(t, chromedp.Do(bctx, shot("task")))

	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/workers"),
		chromedp.WaitVisible(chromedp.CSS("#workers")), shot("workers")))
	host, _ := os.Hostname()
	require.Contains(t, text("#workers"), host, "the running worker is listed from its heartbeat")

	// Schedules: one from taskiq.hcl, one in the schedule source; pause
	// and resume the latter, trigger it and see its task complete.
	require.NoError(t, app.AddSchedule(ctx, "", core.Schedule{ID: "sync-invoices", TaskName: "e2e.add",
		Args: []json.RawMessage{json.RawMessage("20"), json.RawMessage("22")}, Interval: 15 * time.Minute}))
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS("#nav-schedules")),
		chromedp.WaitVisible(chromedp.CSS("#schedules"))))
	list := text("#schedules")
	require.Contains(t, list, "nightly-report")
	require.Contains(t, list, "cron 30 2 * * *")
	require.Contains(t, list, "every 15m0s")
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS("#pause-sync-invoices")),
		chromedp.WaitVisible(chromedp.CSS("#resume-sync-invoices"))))
	require.Contains(t, text("#flash"), "schedule sync-invoices paused")
	require.Contains(t, text("#schedule-sync-invoices"), "paused")
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS("#resume-sync-invoices")),
		chromedp.WaitVisible(chromedp.CSS("#pause-sync-invoices"))))
	require.Contains(t, text("#flash"), "schedule sync-invoices resumed")
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS("#trigger-sync-invoices")),
		chromedp.WaitVisible(chromedp.Search(`//div[@id="flash"][contains(., "triggered")]`)), shot("schedules")))
	flash := text("#flash")
	_, taskID, ok := strings.Cut(flash, "triggered: task ")
	require.True(t, ok, flash)
	sum, err := core.ResultOf[int](app, strings.TrimSpace(taskID)).WaitResult(ctx, 20*time.Second)
	require.NoError(t, err)
	require.EqualValues(t, 42, sum.ReturnValue, "the triggered schedule's task ran")
}
