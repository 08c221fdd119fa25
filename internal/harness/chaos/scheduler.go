package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// SchedulerScenario and SchedulerLeaseScenario are the names of the
// scheduler runs (they are not among Scenarios: they kick no tasks of
// their own, the schedulers do). The lease run turns the broker's dedup
// off, so the replicas elect a leader through the schedule source.
const (
	SchedulerScenario      = "scheduler-replicas"
	SchedulerLeaseScenario = "scheduler-lease"
)

// SchedulerOptions configure the scheduler run.
type SchedulerOptions struct {
	// Bin holds taskiq and taskiq-redis.
	Bin string
	// Dir is the run's directory (its own redis-server, taskiq.hcl, logs).
	Dir string
	// Replicas is how many `taskiq scheduler` processes run (default 3).
	Replicas int
	// Duration is how long replicas are killed and restarted (default 20s).
	Duration time.Duration
	// KillEvery is the pace of the kills (default 1500ms); a killed replica
	// comes back after a random 0-2s.
	KillEvery time.Duration
	Seed      uint64
	Log       func(format string, args ...any)
	// Lease runs the broker with dedup = false: only the holder of the
	// leader lease fires. Its guarantee is at least once: a leader killed
	// between a kick and storing the slot leaves that slot to be fired
	// again, so up to one duplicate per kill is within the promise.
	Lease bool
}

// SchedulerReport is the outcome of the scheduler run: for every slot of
// the window, how many messages the broker holds with its task id.
type SchedulerReport struct {
	Scenario string
	// Window is the slots checked: from shortly after every replica
	// started to the end of the faults.
	From, To time.Time
	// Expected counts the slots of both schedules in the window; Fired
	// those with exactly one message; Missing those with none; Duplicates
	// the extra messages of any task id (in the window or not).
	Expected, Fired, Missing, Duplicates int
	Kills, Restarts                      int
	// Lease is set for the lease run; Leaders counts the times a replica
	// took the lease (from the replicas' logs).
	Lease    bool
	Leaders  int
	Duration time.Duration
	Problems []string
	Samples  []string
}

// Violations lists every broken guarantee.
func (r SchedulerReport) Violations() []string {
	v := append([]string(nil), r.Problems...)
	if r.Missing > 0 {
		v = append(v, fmt.Sprintf("%d slots never fired (catchup \"all\" within 10m fires every one)", r.Missing))
	}
	switch {
	case r.Lease && r.Leaders < 2:
		v = append(v, "the lease never changed hands: the run proves nothing about a leader change")
	case r.Lease && r.Duplicates > r.Kills:
		v = append(v, fmt.Sprintf("%d duplicate fires, more than one per kill (%d)", r.Duplicates, r.Kills))
	case !r.Lease && r.Duplicates > 0:
		v = append(v, fmt.Sprintf("%d duplicate fires", r.Duplicates))
	}
	if r.Kills == 0 {
		v = append(v, "no replica was killed: the run proves nothing")
	}
	return v
}

// FormatScheduler renders the report.
func FormatScheduler(r SchedulerReport) string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tslots\tfired once\tmissing\tduplicates\tkills\trestarts\tleaders\ttime\tverdict\t")
	verdict := "PASS"
	if len(r.Violations()) > 0 {
		verdict = "FAIL"
	}
	leaders := "-"
	if r.Lease {
		leaders = strconv.Itoa(r.Leaders)
	}
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%.1fs\t%s\t\n", r.Scenario, r.Expected, r.Fired, r.Missing,
		r.Duplicates, r.Kills, r.Restarts, leaders, r.Duration.Seconds(), verdict)
	_ = tw.Flush()
	for _, v := range r.Violations() {
		fmt.Fprintf(&b, "  violation: %s\n", v)
	}
	for _, s := range r.Samples {
		fmt.Fprintf(&b, "  sample: %s\n", s)
	}
	return b.String()
}

// The schedules the run fires: a 1s interval and a seconds-cron, both
// catching up every missed slot within 10 minutes.
const (
	schedInterval = "every-second"
	schedCron     = "cron-2s"
	schedQueue    = "chaos-sched"
)

type replica struct {
	n    int
	cmd  *exec.Cmd
	done chan struct{}
}

// RunScheduler runs Replicas `taskiq scheduler` processes against a private
// Redis (a broker that deduplicates kicks and a schedule source that
// stores the last fired slots), SIGKILLs one at random (with its plugins:
// the whole process group) every KillEvery and restarts it, for Duration;
// then counts, by task id, the messages the schedules left in the stream.
func RunScheduler(ctx context.Context, o SchedulerOptions) (rep SchedulerReport) {
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.KillEvery <= 0 {
		o.KillEvery = 1500 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	start := time.Now()
	rep = SchedulerReport{Scenario: SchedulerScenario, Lease: o.Lease}
	if o.Lease {
		rep.Scenario = SchedulerLeaseScenario
	}
	defer func() { rep.Duration = time.Since(start) }()
	fail := func(format string, args ...any) SchedulerReport {
		rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		return rep
	}
	dir := filepath.Join(o.Dir, rep.Scenario)
	if err := os.RemoveAll(dir); err != nil {
		return fail("%v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail("%v", err)
	}
	srv, err := startRedis(ctx, filepath.Join(dir, "redis"))
	if err != nil {
		return fail("%v", err)
	}
	defer srv.stop()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	cfg := filepath.Join(dir, "taskiq.hcl")
	if err := os.WriteFile(cfg, []byte(schedulerConfig(o.Bin, srv.URL(), !o.Lease)), 0o644); err != nil {
		return fail("%v", err)
	}
	rng := newRand(o.Seed)
	reps := make([]*replica, o.Replicas)
	launch := func(i int) error {
		logf, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("scheduler-%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		bin, _ := filepath.Abs(filepath.Join(o.Bin, "taskiq"))
		// Each launch is a new lease holder (the default holder name has the
		// pid), as a replaced replica is.
		cmd := exec.Command(bin, "scheduler", "--config", cfg, "--log-level", "info")
		cmd.Env = append(withoutEnv(os.Environ(), "TMPDIR"), "TMPDIR="+dir)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return err
		}
		r := &replica{n: i, cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); logf.Close(); close(r.done) }()
		reps[i] = r
		return nil
	}
	alive := func(r *replica) bool {
		if r == nil {
			return false
		}
		select {
		case <-r.done:
			return false
		default:
			return true
		}
	}
	defer func() {
		for _, r := range reps {
			if alive(r) {
				_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
				<-r.done
			}
		}
	}()
	for i := range reps {
		if err := launch(i); err != nil {
			return fail("start replica %d: %v", i, err)
		}
	}
	o.Log("%d scheduler replicas on %s", o.Replicas, srv.URL())
	// Slots from shortly after the first replica runs its schedules must all
	// fire (a schedule seen for the first time starts from now).
	if err := waitSchedulerStarted(ctx, dir, o.Replicas); err != nil {
		return fail("%v", err)
	}
	rep.From = time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)

	faultsEnd := time.Now().Add(o.Duration)
	type pending struct {
		i  int
		at time.Time
	}
	var back []pending
	tick := time.NewTicker(o.KillEvery)
	defer tick.Stop()
	for time.Now().Before(faultsEnd) {
		select {
		case <-ctx.Done():
			return fail("interrupted: %v", ctx.Err())
		case <-tick.C:
		}
		now := time.Now()
		kept := back[:0]
		for _, p := range back {
			if now.After(p.at) {
				if err := launch(p.i); err != nil {
					return fail("restart replica %d: %v", p.i, err)
				}
				rep.Restarts++
				o.Log("restarted replica %d", p.i)
			} else {
				kept = append(kept, p)
			}
		}
		back = kept
		i := rng.IntN(o.Replicas)
		if r := reps[i]; alive(r) {
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.done
			rep.Kills++
			back = append(back, pending{i: i, at: now.Add(time.Duration(rng.Int64N(int64(2 * time.Second))))})
			o.Log("SIGKILL replica %d (and its plugins)", i)
		}
	}
	rep.To = time.Now().Truncate(time.Second)
	for _, p := range back {
		if err := launch(p.i); err != nil {
			return fail("restart replica %d: %v", p.i, err)
		}
		rep.Restarts++
	}
	// Let the restarted replicas catch up (in the lease run, the lease of a
	// leader killed last must run out first), then stop every one cleanly.
	wait := 6 * time.Second
	if o.Lease {
		wait = 22 * time.Second
	}
	settle := time.After(wait)
	select {
	case <-ctx.Done():
		return fail("interrupted: %v", ctx.Err())
	case <-settle:
	}
	for _, r := range reps {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, r := range reps {
		select {
		case <-r.done:
			if st := r.cmd.ProcessState; st != nil && !st.Success() {
				rep.Problems = append(rep.Problems, fmt.Sprintf("replica %d exited with %v on SIGTERM", r.n, st))
			}
		case <-time.After(15 * time.Second):
			rep.Problems = append(rep.Problems, fmt.Sprintf("replica %d did not exit within 15s of SIGTERM", r.n))
		}
	}
	for i := range reps {
		b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("scheduler-%d.log", i)))
		rep.Leaders += bytes.Count(b, []byte("holds the lease and fires"))
	}
	counts, err := countFires(ctx, rdb)
	if err != nil {
		return fail("read the stream: %v", err)
	}
	for id, n := range counts {
		if n > 1 {
			rep.Duplicates += n - 1
			rep.Samples = append(rep.Samples, fmt.Sprintf("%s fired %d times", id, n))
		}
	}
	for t := rep.From; !t.After(rep.To); t = t.Add(time.Second) {
		ids := []string{fireID(schedInterval, t)}
		if t.Unix()%2 == 0 {
			ids = append(ids, fireID(schedCron, t))
		}
		for _, id := range ids {
			rep.Expected++
			switch counts[id] {
			case 0:
				rep.Missing++
				if len(rep.Samples) < 20 {
					rep.Samples = append(rep.Samples, id+" never fired")
				}
			default:
				rep.Fired++
			}
		}
	}
	sort.Strings(rep.Samples)
	if len(rep.Samples) > 20 {
		rep.Samples = rep.Samples[:20]
	}
	return rep
}

// waitSchedulerStarted waits until a replica's log says it runs its
// schedules (bounded at 30s).
func waitSchedulerStarted(ctx context.Context, dir string, replicas int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i := range replicas {
			b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("scheduler-%d.log", i)))
			if bytes.Contains(b, []byte("taskiq scheduler: ")) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("no scheduler replica started within 30s; see the scheduler-*.log files in %s", dir)
}

func fireID(schedule string, slot time.Time) string {
	return "sched:" + schedule + ":" + strconv.FormatInt(slot.Unix(), 10)
}

// countFires reads every message of the stream and counts them by task id.
func countFires(ctx context.Context, rdb *redis.Client) (map[string]int, error) {
	entries, err := rdb.XRange(ctx, schedQueue, "-", "+").Result()
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, e := range entries {
		data, _ := e.Values["data"].(string)
		m, err := wire.DecodeMessage([]byte(data))
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", e.ID, err)
		}
		if strings.HasPrefix(m.TaskID, "sched:") {
			counts[m.TaskID]++
		}
	}
	return counts, nil
}

func schedulerConfig(bin, url string, dedup bool) string {
	abs, _ := filepath.Abs(bin)
	return fmt.Sprintf(`# Written by the chaos harness (chaos/scheduler.go).
plugin_dir = %[1]q

broker "default" {
  plugin = "taskiq-redis"
  config {
    url   = %[2]q
    queue = %[3]q
    dedup = %[6]v
  }
}

schedule_source "redis" {
  plugin = "taskiq-redis"
  config {
    url    = %[2]q
    prefix = "chaos-schedule"
  }
}

schedule %[4]q {
  task           = "chaos:noop"
  interval       = "1s"
  catchup        = "all"
  catchup_window = "10m"
}

schedule %[5]q {
  task           = "chaos:noop"
  cron           = "*/2 * * * * *"
  catchup        = "all"
  catchup_window = "10m"
}
`, abs, url, schedQueue, schedInterval, schedCron, dedup)
}
