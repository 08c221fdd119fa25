package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/taskiq-go/taskiq/core/internal/schedule"
	"github.com/taskiq-go/taskiq/core/internal/supervise"
	"github.com/taskiq-go/taskiq/internal/config"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Schedule is one schedule: a task fired by cron, by interval or once (see
// docs/scheduler.md).
type Schedule = sdk.Schedule

// SchedulerStats counts a scheduler's fires, missed and skipped slots,
// errors and lag; read it while the scheduler runs (Snapshot).
type SchedulerStats = schedule.Stats

// SchedulerStatsSnapshot is a copy of SchedulerStats at one moment.
type SchedulerStatsSnapshot = schedule.StatsSnapshot

// Labels every fire carries.
const (
	// LabelScheduleID is the id of the schedule that fired (as taskiq).
	LabelScheduleID = schedule.LabelScheduleID
	// LabelScheduledTime is the slot the fire is for, RFC 3339 in UTC
	// (the fire itself may be later: jitter, catch-up).
	LabelScheduledTime = schedule.LabelScheduledTime
)

// ErrUnknownSchedule is returned for a schedule id no place defines.
var ErrUnknownSchedule = errors.New("unknown schedule")

// ScheduleInfo is a schedule with where it comes from: "config" (a
// schedule block of taskiq.hcl or WithSchedules), "task" (a task's
// "schedule" label) or "source:<name>" (a schedule_source block).
type ScheduleInfo struct {
	Schedule
	Origin string
}

// SchedulerOptions configure RunScheduler.
type SchedulerOptions struct {
	// Holder names this replica in the leader lease (default host name
	// and pid).
	Holder string
	// Reload is how often schedules are read again from their sources
	// (default 10s).
	Reload time.Duration
	// Stats, when set, receives the counters.
	Stats *SchedulerStats
}

// scheduling is what an App keeps for its scheduler.
type scheduling struct {
	mu      sync.Mutex
	static  []ScheduleInfo
	file    *config.File
	host    supervise.Host
	started bool
	sources []*scheduleSource
	// origin maps a loaded schedule's id to its source (nil: config, task).
	origin map[string]*scheduleSource
}

type scheduleSource struct {
	name string
	src  sdk.ScheduleSource
	caps []string
}

// sourceList is a copy of the sources.
func (s *scheduling) sourceList() []*scheduleSource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*scheduleSource(nil), s.sources...)
}

// WithSchedules adds schedules, as schedule blocks of taskiq.hcl do.
func WithSchedules(s ...Schedule) Option {
	return func(a *App) error {
		for _, sc := range s {
			if _, err := schedule.Compile(sc); err != nil {
				return fmt.Errorf("taskiq: WithSchedules: %w", err)
			}
			a.sched.static = append(a.sched.static, ScheduleInfo{Schedule: sc, Origin: "config"})
		}
		return nil
	}
}

// WithScheduleSource adds an in-process schedule source under name, with
// the capabilities it implements (sdk.CapScheduleWrite, CapScheduleState).
func WithScheduleSource(name string, src sdk.ScheduleSource, capabilities ...string) Option {
	return func(a *App) error {
		a.sched.sources = append(a.sched.sources, &scheduleSource{name: name, src: src, caps: capabilities})
		return nil
	}
}

// configure keeps the schedule blocks of f (checked by Load with
// scheduleDiagnostics) and what starting its schedule sources later needs.
func (s *scheduling) configure(f *config.File, host supervise.Host) {
	for _, b := range f.Schedules {
		s.static = append(s.static, ScheduleInfo{Schedule: b.Schedule, Origin: "config"})
	}
	s.file, s.host = f, host
}

// scheduleDiagnostics compiles the schedule blocks of f and reports what
// the engine refuses at the attribute at fault.
func scheduleDiagnostics(f *config.File) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, b := range f.Schedules {
		if _, err := schedule.Compile(b.Schedule); err != nil {
			rng := b.DeclRange
			var fe *schedule.FieldError
			if errors.As(err, &fe) {
				rng = b.Range(fe.Attr)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid schedule",
				Detail: err.Error() + ".", Subject: rng.Ptr()})
		}
	}
	return diags
}

// startScheduleSources starts the schedule_source plugins of taskiq.hcl,
// once; Close stops them.
func (a *App) startScheduleSources(ctx context.Context) error {
	s := &a.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.file == nil {
		s.started = true
		return nil
	}
	procs, diags := supervise.StartScheduleSources(ctx, s.file, s.host, a.logger)
	stop := func(ctx context.Context) error {
		var errs []error
		for _, p := range procs {
			errs = append(errs, p.Close(ctx))
		}
		return errors.Join(errs...)
	}
	if diags.HasErrors() {
		_ = stop(ctx)
		return &ConfigError{diags}
	}
	s.started = true
	// Close runs the closers last to first: the sources stop after the
	// plugins of taskiq.hcl's other blocks.
	a.mu.Lock()
	a.closers = append([]func(context.Context) error{stop}, a.closers...)
	a.mu.Unlock()
	for _, p := range procs {
		s.sources = append(s.sources, &scheduleSource{name: p.Name(), src: supervise.Schedules(p), caps: p.Capabilities()})
	}
	return nil
}

// Schedules returns every schedule the scheduler would run, merged from
// taskiq.hcl (and WithSchedules), the tasks' "schedule" labels and the
// schedule sources, in that order; an id defined twice keeps its first
// definition. It starts the schedule_source plugins if they are not
// running.
func (a *App) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	if err := a.startScheduleSources(ctx); err != nil {
		return nil, err
	}
	list, _, err := a.collectSchedules(ctx)
	return list, err
}

// collectSchedules merges every place's schedules; it also returns which
// source each came from. A source that fails makes err non-nil, and the
// others are still returned.
func (a *App) collectSchedules(ctx context.Context) ([]ScheduleInfo, map[string]*scheduleSource, error) {
	s := &a.sched
	s.mu.Lock()
	static := append([]ScheduleInfo(nil), s.static...)
	s.mu.Unlock()
	sources := s.sourceList()

	out := static
	a.mu.RLock()
	names := make([]string, 0, len(a.tasks))
	for name := range a.tasks {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		label, ok := a.tasks[name].labels[schedule.LabelSchedule]
		if !ok {
			continue
		}
		list, err := schedule.FromLabel(name, label)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, sc := range list {
			out = append(out, ScheduleInfo{Schedule: sc, Origin: "task"})
		}
	}
	a.mu.RUnlock()
	origin := map[string]*scheduleSource{}
	for _, src := range sources {
		list, err := src.src.Schedules(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("schedule source %q: %w", src.name, err))
			continue
		}
		for _, sc := range list {
			out = append(out, ScheduleInfo{Schedule: sc, Origin: "source:" + src.name})
			if _, dup := origin[sc.ID]; !dup {
				origin[sc.ID] = src
			}
		}
	}
	seen := map[string]bool{}
	merged := out[:0]
	for _, sc := range out {
		if seen[sc.ID] {
			a.logger.Warn("a schedule id is defined twice; keeping the first definition", "schedule", sc.ID, "ignored", sc.Origin)
			continue
		}
		seen[sc.ID] = true
		merged = append(merged, sc)
		if sc.Origin != "source:"+nameOf(origin[sc.ID]) {
			delete(origin, sc.ID)
		}
	}
	return merged, origin, errors.Join(errs...)
}

func nameOf(s *scheduleSource) string {
	if s == nil {
		return ""
	}
	return s.name
}

// ScheduleTiming describes a schedule's timing as its attributes say it:
// "cron 30 2 * * * (Europe/Berlin)", "every 30s", "at 2026-12-24T17:00:00Z".
// The CLI and the dashboard show schedules with it.
func ScheduleTiming(s Schedule) string {
	zone := s.Timezone
	if zone == "" {
		zone = s.CronOffset
	}
	switch {
	case s.Cron != "":
		if zone != "" {
			return "cron " + s.Cron + " (" + zone + ")"
		}
		return "cron " + s.Cron
	case s.Interval > 0:
		if s.Phase > 0 {
			return fmt.Sprintf("every %s +%s", s.Interval, s.Phase)
		}
		return "every " + s.Interval.String()
	}
	return "at " + s.Time.UTC().Format(time.RFC3339)
}

// NextFireTimes returns the next n slots of s after t (jitter left out).
func NextFireTimes(s Schedule, after time.Time, n int) ([]time.Time, error) {
	sp, err := schedule.Compile(s)
	if err != nil {
		return nil, err
	}
	return sp.NextN(after, n), nil
}

// RunScheduler fires the App's schedules until ctx ends. Each fire is a
// task with id sched:<schedule id>:<slot unix seconds> and the labels
// schedule_id and scheduled_time. When every broker deduplicates kicks
// (capability "dedup") every replica fires every slot and the broker keeps
// one; otherwise replicas elect a leader through a schedule source with
// state (capability "schedule_state"), and without one this replica fires
// alone: run one. See docs/scheduler.md for what each setting guarantees.
func (a *App) RunScheduler(ctx context.Context, opts SchedulerOptions) error {
	if err := a.startScheduleSources(ctx); err != nil {
		return err
	}
	dedup := true
	for _, e := range a.brokers {
		dedup = dedup && sdk.Has(e.caps, sdk.CapDedup)
	}
	var state sdk.ScheduleState
	for _, src := range a.sched.sourceList() {
		if st, ok := src.src.(sdk.ScheduleState); ok && sdk.Has(src.caps, sdk.CapScheduleState) {
			state = st
			break
		}
	}
	if opts.Holder == "" {
		host, _ := os.Hostname()
		opts.Holder = host + "-" + strconv.Itoa(os.Getpid()) + "-" + randomHex(4)
	}
	eo := schedule.Options{
		Load:   a.loadSpecs,
		Kicker: scheduleKicker{a},
		Dedup:  dedup,
		Holder: opts.Holder,
		Reload: opts.Reload,
		Logger: a.logger.Named("scheduler"),
		Stats:  opts.Stats,
	}
	if _, none := a.results.(dummyResults); !none {
		eo.Results = a.results
	}
	if state != nil {
		eo.Store = state
	}
	switch {
	case dedup:
		eo.Logger.Info("the brokers deduplicate kicks: every replica fires, each slot is kept once")
	case state != nil:
		eo.Lease = state
		eo.Logger.Info("a broker cannot deduplicate kicks: replicas elect a leader through the schedule source's lease")
	default:
		eo.Logger.Warn("a broker cannot deduplicate kicks and no schedule source stores state: run exactly one scheduler replica")
	}
	return schedule.New(eo).Run(ctx)
}

// loadSpecs is the engine's Load: every schedule, compiled; one that does
// not compile is logged and left out.
func (a *App) loadSpecs(ctx context.Context) ([]*schedule.Spec, error) {
	list, origin, err := a.collectSchedules(ctx)
	a.sched.mu.Lock()
	a.sched.origin = origin
	a.sched.mu.Unlock()
	specs := make([]*schedule.Spec, 0, len(list))
	for _, s := range list {
		sp, cerr := schedule.Compile(s.Schedule)
		if cerr != nil {
			a.logger.Warn("skipping a schedule that is not valid", "origin", s.Origin, "error", cerr)
			continue
		}
		specs = append(specs, sp)
	}
	return specs, err
}

// scheduleKicker fires a slot: the source's pre_send, the kick (with the
// dedup window), the source's post_send.
type scheduleKicker struct{ a *App }

func (k scheduleKicker) Kick(ctx context.Context, f schedule.Fire) error {
	a := k.a
	a.sched.mu.Lock()
	src := a.sched.origin[f.Spec.ID]
	a.sched.mu.Unlock()
	var hooks sdk.ScheduleHooks
	if src != nil {
		hooks, _ = src.src.(sdk.ScheduleHooks)
	}
	if hooks != nil {
		if err := hooks.PreSend(ctx, f.Spec.Schedule); err != nil {
			return fmt.Errorf("schedule source %q: pre_send: %w", src.name, err)
		}
	}
	if err := a.fireSchedule(ctx, f.Spec.Schedule, f.TaskID, f.Slot, f.DedupWindow); err != nil {
		return err
	}
	if hooks != nil {
		if err := hooks.PostSend(ctx, f.Spec.Schedule); err != nil {
			a.logger.Warn("schedule source post_send failed; the task was sent", "schedule", f.Spec.ID, "error", err)
		}
	}
	return nil
}

// fireSchedule kicks s's task as the fire of slot.
func (a *App) fireSchedule(ctx context.Context, s Schedule, taskID string, slot time.Time, dedup time.Duration) error {
	msg := &wire.Message{TaskID: taskID, TaskName: s.TaskName, Labels: map[string]any{},
		Args: append([]json.RawMessage{}, s.Args...), Kwargs: s.Kwargs}
	if d := a.task(s.TaskName); d != nil {
		for k, v := range d.labels {
			if k != schedule.LabelSchedule {
				msg.Labels[k] = v
			}
		}
	}
	for k, v := range s.Labels {
		msg.Labels[k] = v
	}
	msg.Labels[LabelScheduleID] = s.ID
	msg.Labels[LabelScheduledTime] = slot.UTC().Format(time.RFC3339)
	return a.sendOnce(ctx, s.Broker, dedup, msg)
}

// TriggerSchedule fires schedule id now, outside its slots, and returns the
// task id (sched:<id>:manual:<random>, so it never collides with a slot's).
func (a *App) TriggerSchedule(ctx context.Context, id string) (string, error) {
	info, _, err := a.findSchedule(ctx, id)
	if err != nil {
		return "", err
	}
	taskID := "sched:" + id + ":manual:" + randomHex(8)
	if err := a.fireSchedule(ctx, info.Schedule, taskID, time.Now(), 0); err != nil {
		return "", err
	}
	return taskID, nil
}

func (a *App) findSchedule(ctx context.Context, id string) (ScheduleInfo, *scheduleSource, error) {
	if err := a.startScheduleSources(ctx); err != nil {
		return ScheduleInfo{}, nil, err
	}
	list, origin, err := a.collectSchedules(ctx)
	for _, s := range list {
		if s.ID == id {
			return s, origin[id], nil
		}
	}
	if err != nil {
		return ScheduleInfo{}, nil, fmt.Errorf("%w %q (and reading the schedules failed: %w)", ErrUnknownSchedule, id, err)
	}
	return ScheduleInfo{}, nil, fmt.Errorf("%w %q", ErrUnknownSchedule, id)
}

// writableSource is the source called name, or the only writable one when
// name is "".
func (a *App) writableSource(ctx context.Context, name string) (*scheduleSource, error) {
	if err := a.startScheduleSources(ctx); err != nil {
		return nil, err
	}
	var writable []*scheduleSource
	for _, s := range a.sched.sourceList() {
		if name != "" && s.name == name {
			if !sdk.Has(s.caps, sdk.CapScheduleWrite) {
				return nil, fmt.Errorf("schedule source %q is read-only: %w", name, sdk.ErrUnsupported)
			}
			return s, nil
		}
		if sdk.Has(s.caps, sdk.CapScheduleWrite) {
			writable = append(writable, s)
		}
	}
	switch {
	case name != "":
		return nil, fmt.Errorf("no schedule_source %q in taskiq.hcl", name)
	case len(writable) == 1:
		return writable[0], nil
	case len(writable) == 0:
		return nil, errors.New("no schedule source allows adding schedules: add a schedule_source block (taskiq-redis or taskiq-inmemory) to taskiq.hcl")
	}
	return nil, fmt.Errorf("%d schedule sources allow adding schedules: name one", len(writable))
}

// AddSchedule stores s in the schedule source called source ("" when there
// is only one that allows it), replacing a schedule with the same id.
func (a *App) AddSchedule(ctx context.Context, source string, s Schedule) error {
	if _, err := schedule.Compile(s); err != nil {
		return err
	}
	src, err := a.writableSource(ctx, source)
	if err != nil {
		return err
	}
	return src.src.Add(ctx, s)
}

// DeleteSchedule removes schedule id from the source that holds it.
func (a *App) DeleteSchedule(ctx context.Context, id string) error {
	info, src, err := a.findSchedule(ctx, id)
	if err != nil {
		return err
	}
	if src == nil {
		return fmt.Errorf("schedule %q comes from %s, not from a schedule source: remove it there", id, originText(info.Origin))
	}
	return src.src.Delete(ctx, id)
}

// SetSchedulePaused pauses or resumes schedule id in the source that holds
// it. A paused schedule's slots pass without a fire and are not caught up.
func (a *App) SetSchedulePaused(ctx context.Context, id string, paused bool) error {
	info, src, err := a.findSchedule(ctx, id)
	if err != nil {
		return err
	}
	if src == nil {
		return fmt.Errorf("schedule %q comes from %s: set paused there", id, originText(info.Origin))
	}
	info.Paused = paused
	return src.src.Add(ctx, info.Schedule)
}

func originText(origin string) string {
	if origin == "task" {
		return "a task's schedule label"
	}
	return "taskiq.hcl"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
