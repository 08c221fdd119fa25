package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/taskiq-go/taskiq/internal/backoff"

	"github.com/hashicorp/go-hclog"
)

// Restart backoff of a failing child: doubled on every failure up to the
// cap, back to the start once a child ran for restartResetAfter or had
// become ready. Backoff is for crash loops; a child that was serving when it
// died (killed from outside, say) is replaced after the start delay.
const (
	restartBackoffStart = 500 * time.Millisecond
	restartBackoffMax   = 30 * time.Second
	restartResetAfter   = time.Minute
)

// runSupervisor checks what it can cheaply (flags, taskiq.hcl, module
// binaries), then starts and supervises the child workers until a signal
// stops them. raw are the worker's arguments as given, passed on to the
// children; args are the module arguments.
func runSupervisor(ctx context.Context, f *workerFlags, raw, args []string, g *globals) error {
	file, err := loadWorkerConfig(f.config, g.stderr)
	if err != nil {
		return err
	}
	modules, err := resolveModules(f, args)
	if err != nil {
		return err
	}
	w := f.settings(file.Worker)
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the taskiq binary to start workers from: %w", err)
	}
	encoded, _ := json.Marshal(modules)
	s := &supervisor{
		logger:    f.logger("taskiq.supervisor", g.stderr),
		exe:       exe,
		args:      append([]string{"worker"}, raw...),
		env:       append(os.Environ(), envWorkerModules+"="+string(encoded)),
		workers:   w.Workers,
		maxFails:  f.maxFails,
		killAfter: w.ShutdownTimeout + pluginShutdownGrace,
		stdout:    g.stdout,
		stderr:    g.stderr,
		events:    make(chan supervisorEvent, 16),
		health:    newHealthState(w.Workers),
		metrics:   newChildMetrics(),
	}
	metricsAddr := file.Telemetry.MetricsAddr
	if f.changed("metrics-addr") {
		metricsAddr = f.metricsAddr
	}
	var metrics http.Handler
	if metricsAddr != "" {
		metrics = supervisorMetrics(s.metrics)
		s.env = append(s.env, envWorkerMetrics+"=1")
	}
	if f.healthAddr != "" {
		shared := metrics
		if metricsAddr != f.healthAddr {
			shared = nil
		}
		stopHealth, err := serveHealth(f.healthAddr, s.health, shared, s.logger)
		if err != nil {
			return err
		}
		defer stopHealth()
	}
	if metrics != nil && metricsAddr != f.healthAddr {
		stopMetrics, err := serveHTTP("--metrics-addr", metricsAddr, metricsMux(metrics), s.logger)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	s.logger.Info("starting workers", "workers", w.Workers, "modules", strings.Join(modules, ","), "config", f.config)
	if code := s.run(ctx); code != 0 {
		return errQuiet
	}
	return nil
}

// supervisor runs the child workers. One goroutine (run) owns all its
// state; process exits, status lines, timers and signals reach it as events.
//
// The goroutines run starts (each child's exit waiter and status reader,
// the pending restart timers) are counted on wg and send their events
// through send, which gives up once done is closed; run stops the timers,
// closes done and waits for wg before it returns, so nothing of the
// supervisor runs on after it.
type supervisor struct {
	logger    hclog.Logger
	exe       string
	args      []string
	env       []string
	workers   int
	maxFails  int
	killAfter time.Duration
	stdout    io.Writer
	stderr    io.Writer
	events    chan supervisorEvent
	health    *healthState
	metrics   *childMetrics

	nextID   int
	slots    []*child // the current child of each slot; nil while it waits for a restart
	live     map[*child]bool
	backoff  []*backoff.Backoff // per slot
	failures int
	everUp   bool
	stopping bool
	exitCode int
	rolling  []int // slots still to replace in a rolling restart

	done      chan struct{}       // closed when run stops: send gives up
	wg        sync.WaitGroup      // the goroutines and pending timers run started
	restarts  map[int]*time.Timer // pending restart timers, by id
	nextTimer int
	killTimer *time.Timer // started when stopping begins
}

// child is one worker process.
type child struct {
	id         int
	slot       int
	cmd        *exec.Cmd
	started    time.Time
	oomAtStart int
	ready      bool     // it became ready once (its first delivery stream opened)
	unready    string   // why it is not ready now (its broker failing), or ""
	retiring   bool     // replaced (rolling restart) or stopping: its exit is expected
	replaces   *child   // during a rolling restart, the child this one replaces once ready
	status     *os.File // the read end of its status pipe
}

type supervisorEvent struct {
	kind   eventKind
	c      *child
	state  *os.ProcessState
	err    error
	slot   int
	timer  int    // evRestart: the timer's id in supervisor.restarts
	reason string // evUnready; evMetrics: the address
}

type eventKind int

const (
	evExit eventKind = iota
	evReady
	evUnready
	evRestart
	evMetrics
)

// statusEvent turns a child's status line into an event.
func statusEvent(c *child, line string) (supervisorEvent, bool) {
	word, reason, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch word {
	case statusReady:
		return supervisorEvent{kind: evReady, c: c}, true
	case statusUnready:
		return supervisorEvent{kind: evUnready, c: c, reason: strings.TrimSpace(reason)}, true
	case statusMetrics:
		return supervisorEvent{kind: evMetrics, c: c, reason: strings.TrimSpace(reason)}, true
	}
	return supervisorEvent{}, false
}

func (s *supervisor) run(ctx context.Context) int {
	if ctx == nil {
		ctx = context.Background()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	s.done = make(chan struct{})
	s.restarts = map[int]*time.Timer{}
	defer s.shutdown()

	s.slots = make([]*child, s.workers)
	s.backoff = make([]*backoff.Backoff, s.workers)
	s.live = map[*child]bool{}
	for slot := range s.workers {
		s.backoff[slot] = backoff.New(restartBackoffStart, restartBackoffMax)
		s.start(slot, nil)
	}
	// The kill timer starts once, when stopping begins; it is stopped when
	// run returns.
	var kill <-chan time.Time
	armKill := func() {
		if s.killTimer == nil {
			s.killTimer = time.NewTimer(s.killAfter)
			kill = s.killTimer.C
		}
	}
	for {
		select {
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				s.rollingRestart()
			case s.stopping:
				s.logger.Warn("second signal: killing the workers", "signal", sig.String())
				s.signalAll(syscall.SIGKILL)
			default:
				s.logger.Info("stopping the workers: no new tasks, draining running ones (send the signal again to kill them at once)", "signal", sig.String())
				s.stop(0)
				armKill()
			}
		case <-ctx.Done():
			if !s.stopping {
				s.stop(0)
				armKill()
			}
		case <-kill:
			s.logger.Warn("workers did not stop within the shutdown timeout; killing them", "timeout", s.killAfter)
			s.signalAll(syscall.SIGKILL)
		case ev := <-s.events:
			wasStopping := s.stopping
			s.handle(ev)
			if s.stopping && !wasStopping {
				armKill()
			}
		}
		s.publishHealth()
		if s.stopping && len(s.live) == 0 {
			if s.exitCode == 0 {
				s.logger.Info("all workers stopped")
			}
			return s.exitCode
		}
	}
}

// start launches a child for slot; replaces is the child it takes over from
// in a rolling restart.
func (s *supervisor) start(slot int, replaces *child) {
	s.nextID++
	c := &child{id: s.nextID, slot: slot, replaces: replaces, started: time.Now()}
	c.oomAtStart, _ = oomKills()
	r, w, err := os.Pipe()
	if err != nil {
		s.logger.Error("cannot create the status pipe of a worker", "error", err)
		s.scheduleRestart(slot)
		return
	}
	cmd := exec.Command(s.exe, s.args...)
	cmd.Env = append(append([]string(nil), s.env...),
		envWorkerChild+"="+strconv.Itoa(slot+1),
		envWorkerStatusFD+"=3")
	cmd.ExtraFiles = []*os.File{w}
	// Own process group: a terminal's Ctrl-C reaches the supervisor only,
	// which decides what the children get.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	c.cmd = cmd
	if err := cmd.Start(); err != nil {
		_ = r.Close()
		_ = w.Close()
		s.logger.Error("cannot start a worker process", "worker", slot+1, "error", err)
		s.failures++
		s.scheduleRestart(slot)
		return
	}
	_ = w.Close()
	s.live[c] = true
	s.slots[slot] = c
	c.status = r
	s.logger.Debug("worker started", "worker", slot+1, "pid", cmd.Process.Pid)
	s.spawn(func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if ev, ok := statusEvent(c, sc.Text()); ok {
				s.send(ev)
			}
		}
		_ = r.Close()
	})
	s.spawn(func() {
		err := cmd.Wait()
		s.send(supervisorEvent{kind: evExit, c: c, state: cmd.ProcessState, err: err})
	})
}

// spawn runs f on a goroutine counted on s.wg. Only run's goroutine calls
// it, so no wg.Add races run's final wg.Wait.
func (s *supervisor) spawn(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// send hands ev to run, or drops it once run has stopped.
func (s *supervisor) send(ev supervisorEvent) {
	select {
	case s.events <- ev:
	case <-s.done:
	}
}

// shutdown ends what run started: the restart timers still pending are
// stopped (a timer that already fired gives up in send), and run waits for
// its goroutines. Every child has exited by then (run stops only once none
// is live), so its exit waiter has returned and its status pipe is closed
// (exited), which ends its reader.
func (s *supervisor) shutdown() {
	close(s.done)
	if s.killTimer != nil {
		s.killTimer.Stop()
	}
	for id, t := range s.restarts {
		if t.Stop() {
			s.wg.Done() // its function will not run
		}
		delete(s.restarts, id)
	}
	s.wg.Wait()
}

func (s *supervisor) handle(ev supervisorEvent) {
	switch ev.kind {
	case evReady:
		c := ev.c
		if !s.live[c] {
			return
		}
		if c.ready { // ready again: its broker is back
			if c.unready != "" {
				c.unready = ""
				s.logger.Info("worker ready again", "worker", c.slot+1, "pid", c.cmd.Process.Pid)
			}
			return
		}
		c.ready = true
		s.everUp = true
		s.logger.Info("worker ready", "worker", c.slot+1, "pid", c.cmd.Process.Pid)
		if old := c.replaces; old != nil {
			c.replaces = nil
			if s.live[old] {
				old.retiring = true
				_ = old.cmd.Process.Signal(syscall.SIGTERM)
			}
			s.rollNext()
		}
	case evUnready:
		c := ev.c
		if !s.live[c] {
			return
		}
		c.unready = ev.reason
		s.logger.Warn("worker not ready", "worker", c.slot+1, "pid", c.cmd.Process.Pid, "reason", ev.reason)
	case evMetrics:
		if s.live[ev.c] {
			s.metrics.set(ev.c.cmd.Process.Pid, ev.c.slot+1, ev.reason)
		}
	case evRestart:
		delete(s.restarts, ev.timer)
		if !s.stopping && s.slots[ev.slot] == nil {
			s.start(ev.slot, nil)
		}
	case evExit:
		s.exited(ev.c, ev.state)
	}
}

func (s *supervisor) exited(c *child, state *os.ProcessState) {
	delete(s.live, c)
	s.metrics.remove(c.cmd.Process.Pid)
	// Its status lines no longer matter, and a process it left behind (a
	// plugin that inherited the pipe) would keep the reader waiting.
	_ = c.status.Close()
	reason := exitReason(state, c.oomAtStart)
	pid := c.cmd.Process.Pid
	current := s.slots[c.slot] == c
	switch {
	case s.stopping:
		if state.Success() {
			s.logger.Info("worker stopped", "worker", c.slot+1, "pid", pid)
		} else {
			s.logger.Warn("worker stopped", "worker", c.slot+1, "pid", pid, "reason", reason)
		}
		return
	case c.retiring || !current:
		s.logger.Info("replaced worker stopped", "worker", c.slot+1, "pid", pid, "reason", reason)
		return
	}
	s.slots[c.slot] = nil
	if old := c.replaces; old != nil && s.live[old] {
		// A rolling restart's new worker died before it was ready: the old
		// one keeps the slot and the rolling restart stops here.
		s.slots[c.slot] = old
		s.rolling = nil
		s.logger.Error("the new worker of a rolling restart exited before it was ready; keeping the old one", "worker", c.slot+1, "reason", reason)
		s.failures++
		s.checkFailures()
		return
	}
	switch {
	case state.Success():
		s.logger.Info("worker exited; starting a new one", "worker", c.slot+1, "pid", pid, "reason", reason)
		s.start(c.slot, nil)
		return
	case state.ExitCode() == exitStartup && !s.everUp:
		s.logger.Error("a worker could not start (its error is logged above); stopping", "worker", c.slot+1, "pid", pid)
		s.stop(1)
		return
	}
	s.failures++
	s.logger.Error("worker died", "worker", c.slot+1, "pid", pid, "reason", reason, "failures", s.failures)
	if s.checkFailures() {
		return
	}
	if c.ready || time.Since(c.started) > restartResetAfter {
		s.backoff[c.slot].Reset()
	}
	s.scheduleRestart(c.slot)
}

// checkFailures stops everything once --max-fails is reached.
func (s *supervisor) checkFailures() bool {
	if s.maxFails > 0 && s.failures >= s.maxFails {
		s.logger.Error("workers failed --max-fails times; giving up", "failures", s.failures)
		s.stop(1)
		return true
	}
	return false
}

func (s *supervisor) scheduleRestart(slot int) {
	d := s.backoff[slot].Next()
	s.logger.Info("restarting worker after backoff", "worker", slot+1, "backoff", d)
	s.nextTimer++
	id := s.nextTimer
	// Counted until it has run or shutdown stopped it.
	s.wg.Add(1)
	s.restarts[id] = time.AfterFunc(d, func() {
		defer s.wg.Done()
		s.send(supervisorEvent{kind: evRestart, slot: slot, timer: id})
	})
}

// stop asks every child to drain and exit; the supervisor then exits with
// code once they are gone.
func (s *supervisor) stop(code int) {
	if s.stopping {
		return
	}
	s.stopping, s.exitCode, s.rolling = true, code, nil
	s.signalAll(syscall.SIGTERM)
}

func (s *supervisor) signalAll(sig syscall.Signal) {
	for c := range s.live {
		c.retiring = true
		_ = c.cmd.Process.Signal(sig)
	}
}

// rollingRestart replaces the children one at a time: a new child starts,
// and once it is ready the old one is asked to drain.
func (s *supervisor) rollingRestart() {
	if s.stopping {
		return
	}
	if len(s.rolling) > 0 {
		s.logger.Info("a rolling restart is already running; ignoring SIGHUP")
		return
	}
	s.logger.Info("SIGHUP: restarting the workers one at a time")
	for slot := range s.workers {
		s.rolling = append(s.rolling, slot)
	}
	s.rollNext()
}

func (s *supervisor) rollNext() {
	for len(s.rolling) > 0 {
		slot := s.rolling[0]
		s.rolling = s.rolling[1:]
		old := s.slots[slot]
		if old == nil || !s.live[old] {
			continue // waiting for a restart anyway: it starts fresh
		}
		s.start(slot, old)
		if s.slots[slot] != old {
			return // wait for the new child to be ready
		}
	}
	s.logger.Info("rolling restart done")
}

func (s *supervisor) publishHealth() {
	states := make([]string, len(s.slots))
	for i, c := range s.slots {
		switch {
		case s.stopping:
			states[i] = "stopping"
		case c == nil:
			states[i] = "restarting"
		case !c.ready:
			states[i] = "starting"
		case c.unready != "":
			states[i] = "not ready: " + c.unready
		default:
			states[i] = "ready"
		}
	}
	s.health.set(states)
}

// exitReason describes how a child ended: its exit status, or the signal
// that killed it, with a hint when SIGKILL looks like the OOM killer.
func exitReason(state *os.ProcessState, oomAtStart int) string {
	if state == nil {
		return "unknown"
	}
	reason := state.String() // "exit status 3", "signal: killed"
	ws, ok := state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return reason
	}
	if n, ok := oomKills(); ok && n > oomAtStart {
		return reason + " (by the kernel's OOM killer: the cgroup's oom_kill count went up; give the workers more memory or lower --max-async-tasks)"
	}
	return reason + " (SIGKILL: by hand, by the supervisor at shutdown, or by the OOM killer; see dmesg)"
}

// oomKills reads the oom_kill counter of this process's cgroup (cgroup v2).
func oomKills() (int, bool) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	var dir string
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			dir = rest
		}
	}
	if dir == "" {
		return 0, false
	}
	ev, err := os.ReadFile("/sys/fs/cgroup" + dir + "/memory.events")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(ev), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			return n, err == nil
		}
	}
	return 0, false
}
