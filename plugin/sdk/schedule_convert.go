package sdk

import (
	"encoding/json"
	"fmt"
	"time"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// fromUnixMsUTC reads an optional instant written by unixMs (0: the zero
// time), in UTC.
func fromUnixMsUTC(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func scheduleToProto(s Schedule) (*pluginv1.ScheduleSpec, error) {
	p := &pluginv1.ScheduleSpec{
		Id: s.ID, TaskName: s.TaskName, Broker: s.Broker,
		Cron: s.Cron, CronOffset: s.CronOffset,
		IntervalMs: s.Interval.Milliseconds(), PhaseMs: s.Phase.Milliseconds(),
		TimeUnixMs: unixMs(s.Time), Timezone: s.Timezone, JitterMs: s.Jitter.Milliseconds(),
		Catchup: s.Catchup, CatchupWindowMs: s.CatchupWindow.Milliseconds(),
		Overlap: s.Overlap, Paused: s.Paused,
		StartAtUnixMs: unixMs(s.StartAt), EndAtUnixMs: unixMs(s.EndAt),
	}
	for _, a := range s.Args {
		p.ArgsJson = append(p.ArgsJson, a)
	}
	if len(s.Kwargs) > 0 {
		p.KwargsJson = make(map[string][]byte, len(s.Kwargs))
		for k, v := range s.Kwargs {
			p.KwargsJson[k] = v
		}
	}
	if len(s.Labels) > 0 {
		b, err := json.Marshal(s.Labels)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: labels cannot be encoded as JSON: %w", s.ID, err)
		}
		p.LabelsJson = b
	}
	return p, nil
}

func scheduleFromProto(p *pluginv1.ScheduleSpec) (Schedule, error) {
	s := Schedule{
		ID: p.Id, TaskName: p.TaskName, Broker: p.Broker,
		Cron: p.Cron, CronOffset: p.CronOffset,
		Interval: time.Duration(p.IntervalMs) * time.Millisecond,
		Phase:    time.Duration(p.PhaseMs) * time.Millisecond,
		Time:     fromUnixMsUTC(p.TimeUnixMs), Timezone: p.Timezone,
		Jitter:  time.Duration(p.JitterMs) * time.Millisecond,
		Catchup: p.Catchup, CatchupWindow: time.Duration(p.CatchupWindowMs) * time.Millisecond,
		Overlap: p.Overlap, Paused: p.Paused,
		StartAt: fromUnixMsUTC(p.StartAtUnixMs), EndAt: fromUnixMsUTC(p.EndAtUnixMs),
	}
	for _, a := range p.ArgsJson {
		s.Args = append(s.Args, json.RawMessage(a))
	}
	if len(p.KwargsJson) > 0 {
		s.Kwargs = make(map[string]json.RawMessage, len(p.KwargsJson))
		for k, v := range p.KwargsJson {
			s.Kwargs[k] = v
		}
	}
	if len(p.LabelsJson) > 0 {
		if err := json.Unmarshal(p.LabelsJson, &s.Labels); err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: labels are not a JSON object: %w", p.Id, err)
		}
	}
	return s, nil
}
