// Package schedule is the scheduler's engine: it turns schedules (cron,
// interval, one shot) into slots, fires each slot once as a task whose id
// derives from the schedule id and the slot, applies the catch-up, overlap
// and pause rules, and keeps the last fired slot per schedule. It knows
// nothing of plugins: the host gives it a Kicker, a Store and a Clock.
package schedule

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Catch-up policies: what a scheduler does with slots that passed while no
// replica was running.
const (
	CatchupSkip   = "skip"
	CatchupLatest = "latest"
	CatchupAll    = "all"
)

// Overlap policies.
const (
	OverlapAllow = "allow"
	OverlapSkip  = "skip"
)

// Defaults.
const (
	DefaultCatchup       = CatchupLatest
	DefaultCatchupWindow = time.Hour
	// OnTime is how late a slot may be fired under catchup "skip": a
	// scheduler that was running fires its slots within it.
	OnTime = 5 * time.Second
)

// Label names a fire carries.
const (
	LabelScheduleID    = "schedule_id"
	LabelScheduledTime = "scheduled_time"
)

// ErrInvalid is wrapped by every error of Compile.
var ErrInvalid = errors.New("invalid schedule")

// FieldError is an error of Compile about one attribute of a schedule, as
// taskiq.hcl spells it ("" for the schedule as a whole).
type FieldError struct {
	ID, Attr, Msg string
}

func (e *FieldError) Error() string {
	if e.Attr == "" {
		return fmt.Sprintf("schedule %q: %s", e.ID, e.Msg)
	}
	return fmt.Sprintf("schedule %q: %s: %s", e.ID, e.Attr, e.Msg)
}

func (e *FieldError) Unwrap() error { return ErrInvalid }

// Spec is a compiled schedule.
type Spec struct {
	sdk.Schedule
	cron *cronExpr
	loc  *time.Location
}

// Compile checks a schedule and fills its defaults. Errors name the
// attribute at fault (as taskiq.hcl spells it).
func Compile(s sdk.Schedule) (*Spec, error) {
	bad := func(attr, format string, args ...any) error {
		return &FieldError{ID: s.ID, Attr: attr, Msg: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(s.ID) == "" {
		return nil, bad("", "the schedule id is empty")
	}
	if strings.TrimSpace(s.TaskName) == "" {
		return nil, bad("task", "the task name is empty")
	}
	kinds := 0
	for _, set := range []bool{s.Cron != "", s.Interval != 0, !s.Time.IsZero()} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return nil, bad("", "set exactly one of cron, interval and at")
	}
	sp := &Spec{Schedule: s, loc: time.UTC}
	zone := s.Timezone
	if zone == "" {
		zone = s.CronOffset
	}
	if zone != "" {
		loc, err := loadZone(zone)
		if err != nil {
			return nil, bad("timezone", "%v", err)
		}
		sp.loc = loc
	}
	if s.Cron != "" {
		c, err := parseCron(s.Cron)
		if err != nil {
			return nil, bad("cron", "%v", err)
		}
		sp.cron = c
	}
	if s.Interval != 0 {
		if s.Interval < time.Second || s.Interval%time.Second != 0 {
			return nil, bad("interval", "%s is not a whole number of seconds of at least 1s", s.Interval)
		}
		if s.Phase < 0 || s.Phase%time.Second != 0 {
			return nil, bad("phase", "%s is not a whole, non-negative number of seconds", s.Phase)
		}
	}
	if s.Jitter < 0 {
		return nil, bad("jitter", "must not be negative")
	}
	switch s.Catchup {
	case "":
		sp.Catchup = DefaultCatchup
	case CatchupSkip, CatchupLatest, CatchupAll:
	default:
		return nil, bad("catchup", "%q is not one of skip, latest, all", s.Catchup)
	}
	if s.CatchupWindow < 0 {
		return nil, bad("catchup_window", "must not be negative")
	}
	if s.CatchupWindow == 0 {
		sp.CatchupWindow = DefaultCatchupWindow
	}
	switch s.Overlap {
	case "":
		sp.Overlap = OverlapAllow
	case OverlapAllow, OverlapSkip:
	default:
		return nil, bad("overlap", "%q is not one of allow, skip", s.Overlap)
	}
	if !s.StartAt.IsZero() && !s.EndAt.IsZero() && !s.EndAt.After(s.StartAt) {
		return nil, bad("end_at", "must be after start_at")
	}
	return sp, nil
}

// loadZone reads an IANA zone name, or a fixed offset such as "+02:00" or
// "-0530" (taskiq's cron_offset).
func loadZone(name string) (*time.Location, error) {
	if loc, err := time.LoadLocation(name); err == nil {
		return loc, nil
	}
	if len(name) >= 3 && (name[0] == '+' || name[0] == '-') {
		digits := strings.ReplaceAll(name[1:], ":", "")
		if len(digits) == 2 {
			digits += "00"
		}
		if len(digits) == 4 {
			h, err1 := strconv.Atoi(digits[:2])
			m, err2 := strconv.Atoi(digits[2:])
			if err1 == nil && err2 == nil && h < 24 && m < 60 {
				off := h*3600 + m*60
				if name[0] == '-' {
					off = -off
				}
				return time.FixedZone(name, off), nil
			}
		}
	}
	return nil, fmt.Errorf("%q is neither an IANA time zone (such as \"Europe/Berlin\") nor an offset (such as \"+02:00\")", name)
}

// Location is the zone the schedule's cron fields are read in.
func (s *Spec) Location() *time.Location { return s.loc }

// Next returns the first slot strictly after t, within start_at/end_at, or
// false when there is none.
func (s *Spec) Next(t time.Time) (time.Time, bool) {
	if !s.StartAt.IsZero() && t.Before(s.StartAt) {
		t = s.StartAt.Add(-time.Nanosecond)
	}
	var slot time.Time
	switch {
	case s.cron != nil:
		var ok bool
		if slot, ok = s.cron.next(t, s.loc); !ok {
			return time.Time{}, false
		}
	case s.Interval > 0:
		slot = nextInterval(t, s.Interval, s.Phase)
	default:
		if !s.Time.After(t) {
			return time.Time{}, false
		}
		slot = s.Time
	}
	if !s.EndAt.IsZero() && slot.After(s.EndAt) {
		return time.Time{}, false
	}
	return slot, true
}

// nextInterval is the first epoch + phase + k*period strictly after t.
func nextInterval(t time.Time, period, phase time.Duration) time.Time {
	p := int64(period / time.Second)
	ph := int64(phase/time.Second) % p
	sec := t.Unix()
	k := floorDiv(sec-ph, p) + 1
	return time.Unix(k*p+ph, 0).UTC()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// NextN returns up to n slots after t.
func (s *Spec) NextN(t time.Time, n int) []time.Time {
	var out []time.Time
	for len(out) < n {
		next, ok := s.Next(t)
		if !ok {
			break
		}
		out = append(out, next)
		t = next
	}
	return out
}

// JitterFor is the delay of the fire of slot: a share of Jitter fixed by
// the schedule id and the slot, so every replica waits the same.
func (s *Spec) JitterFor(slot time.Time) time.Duration {
	if s.Jitter <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(s.ID))
	h.Write([]byte(strconv.FormatInt(slot.Unix(), 10)))
	return time.Duration(h.Sum64() % uint64(s.Jitter))
}

// TaskID is the task id of the fire of slot: sched:<id>:<unix seconds>.
func TaskID(scheduleID string, slot time.Time) string {
	return "sched:" + scheduleID + ":" + strconv.FormatInt(slot.Unix(), 10)
}
