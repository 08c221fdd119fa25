package schedule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// LabelSchedule is the task label taskiq's LabelScheduleSource reads.
const LabelSchedule = "schedule"

// labelEntry is one element of a task's "schedule" label, in taskiq's
// format, plus timezone.
type labelEntry struct {
	Cron       string                     `json:"cron"`
	CronOffset json.RawMessage            `json:"cron_offset"`
	Interval   json.RawMessage            `json:"interval"`
	Time       string                     `json:"time"`
	Args       []json.RawMessage          `json:"args"`
	Kwargs     map[string]json.RawMessage `json:"kwargs"`
	Labels     map[string]any             `json:"labels"`
	ScheduleID string                     `json:"schedule_id"`
	Timezone   string                     `json:"timezone"`
}

// FromLabel reads the schedules a task declares in its "schedule" label
// (a list of {cron, cron_offset, interval, time, args, kwargs, labels,
// schedule_id}). An entry without schedule_id gets a stable id from the
// task name and the entry's content: editing the entry gives it a new id.
func FromLabel(taskName string, label any) ([]sdk.Schedule, error) {
	raw, err := json.Marshal(label)
	if err != nil {
		return nil, fmt.Errorf("task %q: label %q: %w", taskName, LabelSchedule, err)
	}
	if s, ok := label.(string); ok {
		raw = []byte(s) // a label that crossed as a string holds the JSON
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("task %q: label %q must be a list of schedules: %w", taskName, LabelSchedule, err)
	}
	out := make([]sdk.Schedule, 0, len(entries))
	for i, e := range entries {
		var le labelEntry
		if err := json.Unmarshal(e, &le); err != nil {
			return nil, fmt.Errorf("task %q: schedule %d of label %q: %w", taskName, i, LabelSchedule, err)
		}
		s := sdk.Schedule{ID: le.ScheduleID, TaskName: taskName, Cron: le.Cron, Args: le.Args,
			Kwargs: le.Kwargs, Labels: le.Labels, Timezone: le.Timezone}
		if s.ID == "" {
			sum := sha256.Sum256(e)
			s.ID = taskName + ":" + hex.EncodeToString(sum[:6])
		}
		if len(le.CronOffset) > 0 && string(le.CronOffset) != "null" {
			var name string
			if json.Unmarshal(le.CronOffset, &name) == nil {
				s.CronOffset = name
			} else {
				var secs float64
				if err := json.Unmarshal(le.CronOffset, &secs); err != nil {
					return nil, fmt.Errorf("task %q: schedule %s: cron_offset is neither a zone nor seconds", taskName, s.ID)
				}
				s.CronOffset = offsetName(int(secs))
			}
		}
		if len(le.Interval) > 0 && string(le.Interval) != "null" {
			var secs float64
			if err := json.Unmarshal(le.Interval, &secs); err != nil {
				return nil, fmt.Errorf("task %q: schedule %s: interval must be a number of seconds", taskName, s.ID)
			}
			s.Interval = time.Duration(secs * float64(time.Second))
		}
		if le.Time != "" {
			t, err := time.Parse(time.RFC3339, le.Time)
			if err != nil {
				return nil, fmt.Errorf("task %q: schedule %s: time %q is not an RFC 3339 time", taskName, s.ID, le.Time)
			}
			s.Time = t.UTC()
		}
		out = append(out, s)
	}
	return out, nil
}

func offsetName(secs int) string {
	sign := "+"
	if secs < 0 {
		sign, secs = "-", -secs
	}
	return fmt.Sprintf("%s%02d:%02d", sign, secs/3600, secs%3600/60)
}
