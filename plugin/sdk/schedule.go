package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// KindScheduleSource is the schedule source role: a store of schedules the
// scheduler reads (and, with CapScheduleWrite, the CLI writes).
const KindScheduleSource Kind = "schedule_source"

// ScheduleSource stores schedules. Schedules returns every schedule the
// source holds; Add replaces a schedule with the same ID; Delete of an
// unknown id returns ErrScheduleNotFound. A read-only source returns ErrUnsupported
// from Add and Delete.
type ScheduleSource interface {
	Schedules(ctx context.Context) ([]Schedule, error)
	Add(ctx context.Context, s Schedule) error
	Delete(ctx context.Context, id string) error
	Close(ctx context.Context) error
}

// ScheduleHooks is implemented by a source that wants to hear about each
// fire of its schedules (taskiq's pre_send and post_send of a schedule
// source): PreSend before the task is kicked, PostSend after it was. A
// source that keeps one-shot schedules only until they fire deletes them
// in PostSend.
type ScheduleHooks interface {
	PreSend(ctx context.Context, s Schedule) error
	PostSend(ctx context.Context, s Schedule) error
}

// ScheduleState is implemented by a source that stores the scheduler's own
// state beside the schedules (capability CapScheduleState): the last slot
// fired per schedule, so a restarted scheduler neither repeats nor skips a
// slot, and the leader lease that replicas take when their broker cannot
// deduplicate kicks.
type ScheduleState interface {
	// LastFired returns the last fired slot of each id that has one.
	LastFired(ctx context.Context, ids []string) (map[string]time.Time, error)
	// MarkFired records slot as fired for id; an earlier slot than the one
	// stored leaves the stored one.
	MarkFired(ctx context.Context, id string, slot time.Time) error
	// AcquireLease takes the lease called name for holder for ttl, or renews
	// it when holder has it already, and reports whether holder has it.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up when holder has it.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Schedule source capabilities.
const (
	// CapScheduleWrite: Add and Delete work (`taskiq schedule add`).
	CapScheduleWrite = "schedule_write"
	// CapScheduleState: the source implements ScheduleState.
	CapScheduleState = "schedule_state"
)

// Schedule is one schedule: taskiq's ScheduledTask (task_name, labels,
// args, kwargs, schedule_id, cron, cron_offset, time, interval) and the
// settings taskiq-go adds. Exactly one of Cron, Interval and Time is set.
type Schedule struct {
	ID       string
	TaskName string
	Args     []json.RawMessage
	Kwargs   map[string]json.RawMessage
	Labels   map[string]any
	// Broker names the broker to kick through; "" is the default broker.
	Broker string

	// Cron has 5 fields, or 6 with seconds first.
	Cron string
	// CronOffset is taskiq's cron_offset: a time zone name or a fixed
	// offset ("+02:00"); Timezone wins when both are set.
	CronOffset string
	// Interval fires every Interval, at slots anchored to the Unix epoch
	// plus Phase.
	Interval time.Duration
	Phase    time.Duration
	// Time fires once (a one-shot schedule, `at` in taskiq.hcl).
	Time time.Time

	// Timezone is the IANA zone cron fields are read in (default UTC).
	Timezone string
	// Jitter delays each fire by a fixed pseudo-random share of it.
	Jitter time.Duration
	// Catchup is "skip", "latest" (default) or "all"; CatchupWindow bounds
	// how old a missed slot may be to be fired (default 1h).
	Catchup       string
	CatchupWindow time.Duration
	// Overlap is "allow" (default) or "skip".
	Overlap string
	Paused  bool
	// StartAt and EndAt bound the slots fired; zero means no bound.
	StartAt time.Time
	EndAt   time.Time
}

// ErrScheduleNotFound is returned by a source's Delete for an unknown id.
var ErrScheduleNotFound = errors.New("schedule not found")
