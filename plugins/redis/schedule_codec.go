package taskiqredis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/taskiq-go/taskiq/internal/pickle"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// scheduleCodec turns a schedule into the value stored under
// <prefix>:data:<id> and back. taskiq-redis stores the dict of taskiq's
// ScheduledTask through its serializer; json is the one written here.
type scheduleCodec interface {
	encode(s sdk.Schedule) ([]byte, error)
	decode(b []byte) (sdk.Schedule, error)
}

// storedSchedule is the dict taskiq's ScheduledTask dumps to (task_name,
// labels, args, kwargs, task_id, schedule_id, cron, cron_offset, time,
// interval), followed by taskiq-go's own settings, which Python's model
// ignores as extra fields. Durations are seconds, times ISO 8601.
type storedSchedule struct {
	TaskName   string                     `json:"task_name"`
	Labels     map[string]any             `json:"labels"`
	Args       []json.RawMessage          `json:"args"`
	Kwargs     map[string]json.RawMessage `json:"kwargs"`
	TaskID     *string                    `json:"task_id"`
	ScheduleID string                     `json:"schedule_id"`
	Cron       *string                    `json:"cron"`
	CronOffset json.RawMessage            `json:"cron_offset"`
	Time       *string                    `json:"time"`
	Interval   json.RawMessage            `json:"interval"`

	Timezone      string  `json:"timezone,omitempty"`
	Phase         float64 `json:"phase,omitempty"`
	Jitter        float64 `json:"jitter,omitempty"`
	Catchup       string  `json:"catchup,omitempty"`
	CatchupWindow float64 `json:"catchup_window,omitempty"`
	Overlap       string  `json:"overlap,omitempty"`
	Paused        bool    `json:"paused,omitempty"`
	StartAt       *string `json:"start_at,omitempty"`
	EndAt         *string `json:"end_at,omitempty"`
	Broker        string  `json:"broker,omitempty"`
}

type jsonScheduleCodec struct{}

func seconds(d time.Duration) float64 { return d.Seconds() }

func fromSeconds(f float64) time.Duration { return time.Duration(math.Round(f * float64(time.Second))) }

// isoTime writes t as Python's datetime.isoformat does for an aware UTC
// datetime.
func isoTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format("2006-01-02T15:04:05.999999") + "+00:00"
	return &s
}

// parseISOTime reads the ISO 8601 forms Python writes; a time without an
// offset is UTC, as taskiq-redis reads it.
func parseISOTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999", "2006-01-02 15:04:05.999999Z07:00", "2006-01-02 15:04:05.999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 time", s)
}

func (jsonScheduleCodec) encode(s sdk.Schedule) ([]byte, error) {
	st := storedSchedule{
		TaskName: s.TaskName, Labels: s.Labels, Args: s.Args, Kwargs: s.Kwargs, ScheduleID: s.ID,
		CronOffset: json.RawMessage("null"), Interval: json.RawMessage("null"),
		Timezone: s.Timezone, Phase: seconds(s.Phase), Jitter: seconds(s.Jitter),
		Catchup: s.Catchup, CatchupWindow: seconds(s.CatchupWindow), Overlap: s.Overlap, Paused: s.Paused,
		StartAt: isoTime(s.StartAt), EndAt: isoTime(s.EndAt), Broker: s.Broker,
	}
	if st.Labels == nil {
		st.Labels = map[string]any{}
	}
	if st.Args == nil {
		st.Args = []json.RawMessage{}
	}
	if st.Kwargs == nil {
		st.Kwargs = map[string]json.RawMessage{}
	}
	if s.Cron != "" {
		st.Cron = &s.Cron
	}
	if s.CronOffset != "" {
		b, _ := json.Marshal(s.CronOffset)
		st.CronOffset = b
	}
	st.Time = isoTime(s.Time)
	if s.Interval > 0 {
		// taskiq reads an int of seconds; a fraction is written as a float.
		st.Interval = json.RawMessage(strconv.FormatFloat(seconds(s.Interval), 'f', -1, 64))
	}
	return json.Marshal(st)
}

func (jsonScheduleCodec) decode(b []byte) (sdk.Schedule, error) {
	var st storedSchedule
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&st); err != nil {
		return sdk.Schedule{}, fmt.Errorf("not a JSON schedule: %w", err)
	}
	s := sdk.Schedule{
		ID: st.ScheduleID, TaskName: st.TaskName, Labels: st.Labels, Args: st.Args, Kwargs: st.Kwargs,
		Timezone: st.Timezone, Phase: fromSeconds(st.Phase), Jitter: fromSeconds(st.Jitter),
		Catchup: st.Catchup, CatchupWindow: fromSeconds(st.CatchupWindow), Overlap: st.Overlap,
		Paused: st.Paused, Broker: st.Broker,
	}
	if st.Cron != nil {
		s.Cron = *st.Cron
	}
	if off, err := cronOffset(st.CronOffset); err != nil {
		return sdk.Schedule{}, err
	} else {
		s.CronOffset = off
	}
	if iv := bytes.TrimSpace(st.Interval); len(iv) > 0 && string(iv) != "null" {
		f, err := strconv.ParseFloat(string(iv), 64)
		if err != nil {
			return sdk.Schedule{}, fmt.Errorf("interval %s is not a number of seconds", iv)
		}
		s.Interval = fromSeconds(f)
	}
	for _, t := range []struct {
		src *string
		dst *time.Time
	}{{st.Time, &s.Time}, {st.StartAt, &s.StartAt}, {st.EndAt, &s.EndAt}} {
		if t.src == nil {
			continue
		}
		v, err := parseISOTime(*t.src)
		if err != nil {
			return sdk.Schedule{}, err
		}
		*t.dst = v
	}
	if s.Labels != nil {
		s.Labels = plainNumbers(s.Labels)
	}
	return s, nil
}

// cronOffset reads taskiq's cron_offset: null, a zone name or offset
// string, or a timedelta written as seconds.
func cronOffset(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return "", fmt.Errorf("cron_offset %s is neither a zone nor a number of seconds", raw)
	}
	off := int(math.Round(f))
	sign := "+"
	if off < 0 {
		sign, off = "-", -off
	}
	return fmt.Sprintf("%s%02d:%02d", sign, off/3600, off%3600/60), nil
}

// plainNumbers turns the json.Number values of decoded labels into int64
// or float64.
func plainNumbers(m map[string]any) map[string]any {
	for k, v := range m {
		if n, ok := v.(json.Number); ok {
			if i, err := n.Int64(); err == nil {
				m[k] = i
			} else if f, err := n.Float64(); err == nil {
				m[k] = f
			}
		}
	}
	return m
}

// pickleScheduleCodec stores the same dict as jsonScheduleCodec as a pickle
// (protocol 4, as CPython writes it): Python's ListRedisScheduleSource
// default. Only plain data is read: a schedule Python pickled with a
// datetime object in it (a one-shot `time` set from Python) is refused
// (pickle.ErrUnsupported), logged and left out by Schedules.
type pickleScheduleCodec struct{}

func (pickleScheduleCodec) encode(s sdk.Schedule) ([]byte, error) {
	b, err := jsonScheduleCodec{}.encode(s)
	if err != nil {
		return nil, err
	}
	return pickle.FromJSON(b)
}

func (pickleScheduleCodec) decode(b []byte) (sdk.Schedule, error) {
	j, err := pickle.ToJSON(b)
	if err != nil {
		return sdk.Schedule{}, fmt.Errorf("not a pickled schedule: %w", err)
	}
	return jsonScheduleCodec{}.decode(j)
}
