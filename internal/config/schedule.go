package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// ScheduleBlock is one `schedule "ID" {}` block.
type ScheduleBlock struct {
	sdk.Schedule
	// DeclRange is the block header; Ranges holds the value range of each
	// attribute written, by name, so later checks (the cron syntax, the
	// time zone) point at the attribute.
	DeclRange hcl.Range
	Ranges    map[string]hcl.Range
}

// Range returns the range of attr's value, or the block header.
func (b *ScheduleBlock) Range(attr string) hcl.Range {
	if r, ok := b.Ranges[attr]; ok {
		return r
	}
	return b.DeclRange
}

var scheduleSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "task", Required: true},
		{Name: "args"}, {Name: "kwargs"}, {Name: "labels"}, {Name: "broker"},
		{Name: "cron"}, {Name: "interval"}, {Name: "phase"}, {Name: "at"}, {Name: "timezone"},
		{Name: "jitter"}, {Name: "catchup"}, {Name: "catchup_window"}, {Name: "overlap"},
		{Name: "paused"}, {Name: "start_at"}, {Name: "end_at"},
	},
}

// Catch-up and overlap policies as taskiq.hcl spells them.
var (
	catchupPolicies = []string{"skip", "latest", "all"}
	overlapPolicies = []string{"allow", "skip"}
)

// schedule decodes a schedule block. Checks that need the scheduler's
// engine (cron syntax, zone names) are left to it; it reports them at
// ScheduleBlock.Range.
func (d *decoder) schedule(blk *hcl.Block, seen map[string]*ScheduleBlock) {
	id := blk.Labels[0]
	if strings.TrimSpace(id) == "" {
		d.errorf(blk.LabelRanges[0], "Invalid schedule id",
			"The label of a schedule block is its id and must not be empty, e.g. schedule \"nightly-report\" {}.")
		return
	}
	if prev := seen[id]; prev != nil {
		d.errorf(blk.DefRange, "Duplicate schedule block",
			"A schedule %q is already defined at %s; schedule ids must be unique.", id, rangeString(prev.DeclRange))
		return
	}
	sb := &ScheduleBlock{Schedule: sdk.Schedule{ID: id}, DeclRange: blk.DefRange, Ranges: map[string]hcl.Range{}}
	content, diags := blk.Body.Content(scheduleSchema)
	d.diags = append(d.diags, diags...)
	attrs := content.Attributes
	for name, a := range attrs {
		sb.Ranges[name] = a.Expr.Range()
	}
	str := func(name string, dst *string) {
		if a := attrs[name]; a != nil {
			d.expr(a, dst)
		}
	}
	str("task", &sb.TaskName)
	str("broker", &sb.Broker)
	str("cron", &sb.Cron)
	str("timezone", &sb.Timezone)
	d.durationAttr(attrs["interval"], &sb.Interval)
	d.durationAttr(attrs["phase"], &sb.Phase)
	d.durationAttr(attrs["jitter"], &sb.Jitter)
	d.durationAttr(attrs["catchup_window"], &sb.CatchupWindow)
	if a := attrs["paused"]; a != nil {
		d.expr(a, &sb.Paused)
	}
	d.enumAttr(attrs["catchup"], &sb.Catchup, catchupPolicies)
	d.enumAttr(attrs["overlap"], &sb.Overlap, overlapPolicies)
	d.timeAttr(attrs["at"], &sb.Time)
	d.timeAttr(attrs["start_at"], &sb.StartAt)
	d.timeAttr(attrs["end_at"], &sb.EndAt)
	if a := attrs["args"]; a != nil {
		if v, ok := d.value(a); ok {
			if !(v.Type().IsTupleType() || v.Type().IsListType()) {
				d.errorf(a.Expr.Range(), "Invalid args", "args is a list of the task's positional arguments, e.g. [1, \"two\"].")
			} else {
				sb.Args = []json.RawMessage{}
				for it := v.ElementIterator(); it.Next(); {
					_, el := it.Element()
					if raw, ok := d.json(a, el); ok {
						sb.Args = append(sb.Args, raw)
					}
				}
			}
		}
	}
	for _, m := range []struct {
		name string
		set  func(k string, raw json.RawMessage)
	}{
		{"kwargs", func(k string, raw json.RawMessage) {
			if sb.Kwargs == nil {
				sb.Kwargs = map[string]json.RawMessage{}
			}
			sb.Kwargs[k] = raw
		}},
		{"labels", func(k string, raw json.RawMessage) {
			if sb.Labels == nil {
				sb.Labels = map[string]any{}
			}
			var v any
			_ = json.Unmarshal(raw, &v)
			sb.Labels[k] = v
		}},
	} {
		a := attrs[m.name]
		if a == nil {
			continue
		}
		v, ok := d.value(a)
		if !ok {
			continue
		}
		if !(v.Type().IsObjectType() || v.Type().IsMapType()) {
			d.errorf(a.Expr.Range(), "Invalid "+m.name, "%s is an object of names to values, e.g. { key = \"value\" }.", m.name)
			continue
		}
		for it := v.ElementIterator(); it.Next(); {
			k, el := it.Element()
			if raw, ok := d.json(a, el); ok {
				m.set(k.AsString(), raw)
			}
		}
	}
	kinds := 0
	for _, n := range []string{"cron", "interval", "at"} {
		if attrs[n] != nil {
			kinds++
		}
	}
	if kinds != 1 {
		d.errorf(blk.DefRange, "Invalid schedule",
			"Schedule %q needs exactly one of cron (\"*/5 * * * *\", or 6 fields with seconds), interval (\"30s\") and at (an RFC 3339 time).", id)
	}
	if a := attrs["interval"]; a != nil && sb.Interval == 0 && kinds == 1 {
		d.errorf(a.Expr.Range(), "Invalid interval", "interval must be positive.")
	}
	seen[id] = sb
	d.file.Schedules = append(d.file.Schedules, sb)
}

func (d *decoder) value(a *hcl.Attribute) (cty.Value, bool) {
	v, diags := a.Expr.Value(d.ctx)
	diags = fixFuncDiags(diags)
	d.diags = append(d.diags, diags...)
	return v, !diags.HasErrors()
}

func (d *decoder) json(a *hcl.Attribute, v cty.Value) (json.RawMessage, bool) {
	if !v.IsWhollyKnown() {
		d.errorf(a.Expr.Range(), "Invalid "+a.Name, "%s must be known when the file is read.", a.Name)
		return nil, false
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		d.errorf(a.Expr.Range(), "Invalid "+a.Name, "%s cannot be written as JSON: %v.", a.Name, err)
		return nil, false
	}
	return b, true
}

// enumAttr decodes an optional string that must be one of choices.
func (d *decoder) enumAttr(a *hcl.Attribute, dst *string, choices []string) {
	if a == nil {
		return
	}
	var s string
	if !d.expr(a, &s) {
		return
	}
	if !contains(choices, s) {
		hint := ""
		if sug := suggest(s, choices); sug != "" {
			hint = fmt.Sprintf(" Did you mean %q?", sug)
		}
		d.errorf(a.Expr.Range(), "Invalid "+a.Name, "%q is not one of %s.%s", s, strings.Join(choices, ", "), hint)
		return
	}
	*dst = s
}

// timeAttr decodes an optional RFC 3339 time.
func (d *decoder) timeAttr(a *hcl.Attribute, dst *time.Time) {
	if a == nil {
		return
	}
	var s string
	if !d.expr(a, &s) {
		return
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		d.errorf(a.Expr.Range(), "Invalid "+a.Name,
			"%q is not an RFC 3339 time; write it with its offset, e.g. \"2026-01-31T09:00:00+01:00\" or \"2026-01-31T08:00:00Z\".", s)
		return
	}
	*dst = t.UTC()
}
