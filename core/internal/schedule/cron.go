package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser reads 5 fields (minute first) or 6 (seconds first), and the
// @hourly-style descriptors; @every and TZ= prefixes are refused by
// parseCron (intervals and time zones have attributes of their own).
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// starBit is robfig/cron's marker of a field written as "*" or "?".
const starBit = 1 << 63

// cronExpr is a parsed cron expression: the bit sets of the fields. Only
// the parser comes from robfig/cron; the walk over wall-clock times and the
// daylight-saving rules are this package's.
type cronExpr struct {
	second, minute, hour, dom, month, dow uint64
}

func parseCron(expr string) (*cronExpr, error) {
	e := strings.TrimSpace(expr)
	if strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ=") {
		return nil, fmt.Errorf("cron %q: set the time zone with timezone, not in the expression", expr)
	}
	if strings.HasPrefix(e, "@every") {
		return nil, fmt.Errorf("cron %q: use interval for a fixed period", expr)
	}
	s, err := cronParser.Parse(e)
	if err != nil {
		return nil, fmt.Errorf("cron %q: %w (write 5 fields, or 6 with seconds first)", expr, err)
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("cron %q: not a field expression", expr)
	}
	return &cronExpr{second: spec.Second, minute: spec.Minute, hour: spec.Hour,
		dom: spec.Dom, month: spec.Month, dow: spec.Dow}, nil
}

func has(set uint64, v int) bool { return set&(1<<uint(v)) != 0 }

// dayMatches follows cron's rule: when both day fields are restricted a day
// matching either fires; when one is "*" both must match.
func (c *cronExpr) dayMatches(t time.Time) bool {
	dom, dow := has(c.dom, t.Day()), has(c.dow, int(t.Weekday()))
	if c.dom&starBit != 0 || c.dow&starBit != 0 {
		return dom && dow
	}
	return dom || dow
}

// nextCivil returns the first wall-clock time at or after w (a civil time
// written in UTC, so that the walk has no daylight-saving jumps) that
// matches, or false when none does within five years.
func (c *cronExpr) nextCivil(w time.Time) (time.Time, bool) {
	limit := w.AddDate(5, 0, 0)
	for w.Before(limit) {
		switch {
		case !has(c.month, int(w.Month())):
			w = time.Date(w.Year(), w.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !c.dayMatches(w):
			w = time.Date(w.Year(), w.Month(), w.Day()+1, 0, 0, 0, 0, time.UTC)
		case !has(c.hour, w.Hour()):
			w = w.Truncate(time.Hour).Add(time.Hour)
		case !has(c.minute, w.Minute()):
			w = w.Truncate(time.Minute).Add(time.Minute)
		case !has(c.second, w.Second()):
			w = w.Add(time.Second)
		default:
			return w, true
		}
	}
	return time.Time{}, false
}

// civil is t's wall clock in loc, written in UTC.
func civil(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
}

// resolve turns a wall-clock time of loc into the instant it fires at. A
// time that occurs twice (the hour repeated when clocks go back) resolves
// to its first occurrence; a time that does not exist (the hour skipped
// when clocks go forward) resolves to the first instant after the gap.
func resolve(w time.Time, loc *time.Location) time.Time {
	var first time.Time
	// The offsets in effect half a day either side cover every transition
	// that can make w ambiguous or missing.
	for _, probe := range []time.Duration{-12 * time.Hour, 12 * time.Hour} {
		_, off := w.Add(probe).In(loc).Zone()
		inst := w.Add(-time.Duration(off) * time.Second)
		if civil(inst, loc).Equal(w) && (first.IsZero() || inst.Before(first)) {
			first = inst
		}
	}
	if !first.IsZero() {
		return first
	}
	// In a gap: read w with the offset after the transition, which lands
	// before the transition; the zone in effect there ends at the gap's end.
	_, after := w.Add(12 * time.Hour).In(loc).Zone()
	inst := w.Add(-time.Duration(after) * time.Second)
	if _, end := inst.In(loc).ZoneBounds(); !end.IsZero() {
		return end
	}
	return inst
}

// next returns the first instant strictly after t at which the expression
// fires in loc.
func (c *cronExpr) next(t time.Time, loc *time.Location) (time.Time, bool) {
	w := civil(t, loc)
	for {
		m, ok := c.nextCivil(w)
		if !ok {
			return time.Time{}, false
		}
		if inst := resolve(m, loc); inst.After(t) {
			return inst, true
		}
		w = m.Add(time.Second)
	}
}
