package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// CapHookLabelChanges is the capability of a middleware role served by this
// SDK: when the host asks for it (HookRequest.label_changes), a hook that
// changed nothing but labels answers with those labels alone instead of
// the whole message and result, and a hook that changed nothing answers
// with nothing. Serve adds it; a plugin author never declares it. A host
// seeing a middleware without it (a plugin built with an older SDK) does
// not ask, and gets whole messages as before.
const CapHookLabelChanges = "hook_label_changes"

// maxSnapshotLabels bounds the labels a hook's snapshot compares one by
// one; a message or result with more takes the whole-message answer.
const maxSnapshotLabels = 64

// label is one label of a snapshot.
type label struct {
	key string
	val any
}

// messageSnapshot is what a message was before a hook ran, to tell what
// the hook changed.
type messageSnapshot struct {
	taskID, taskName string
	args             []json.RawMessage
	kwargs           []rawKwarg
	labels           []label
	ok               bool // false: too many labels to compare
}

type rawKwarg struct {
	key string
	val json.RawMessage
}

func snapshotMessage(m *wire.Message) messageSnapshot {
	if len(m.Labels) > maxSnapshotLabels {
		return messageSnapshot{}
	}
	s := messageSnapshot{taskID: m.TaskID, taskName: m.TaskName, ok: true}
	if len(m.Args) > 0 {
		s.args = append([]json.RawMessage(nil), m.Args...)
	}
	if len(m.Kwargs) > 0 {
		s.kwargs = make([]rawKwarg, 0, len(m.Kwargs))
		for k, v := range m.Kwargs {
			s.kwargs = append(s.kwargs, rawKwarg{k, v})
		}
	}
	s.labels = snapshotLabels(m.Labels)
	return s
}

func snapshotLabels(labels map[string]any) []label {
	if len(labels) == 0 {
		return nil
	}
	out := make([]label, 0, len(labels))
	for k, v := range labels {
		out = append(out, label{k, v})
	}
	return out
}

// labelsOnly reports whether m differs from the snapshot in its labels at
// most.
func (s *messageSnapshot) labelsOnly(m *wire.Message) bool {
	if !s.ok || m.TaskID != s.taskID || m.TaskName != s.taskName ||
		len(m.Args) != len(s.args) || len(m.Kwargs) != len(s.kwargs) || len(m.Labels) > maxSnapshotLabels {
		return false
	}
	for i, a := range s.args {
		if !bytes.Equal(a, m.Args[i]) {
			return false
		}
	}
	for _, kw := range s.kwargs {
		v, ok := m.Kwargs[kw.key]
		if !ok || !bytes.Equal(v, kw.val) {
			return false
		}
	}
	return true
}

// messageLabelChanges lists the labels of now that differ from before (set,
// changed or deleted), as the wire carries message labels: a label counts
// as changed when its wire text or type differs.
func messageLabelChanges(before []label, now map[string]any) []*pluginv1.LabelChange {
	var out []*pluginv1.LabelChange
	for k, v := range now {
		if old, ok := find(before, k); ok && sameMessageLabel(old, v) {
			continue
		}
		text, typ := wire.LabelText(v)
		out = append(out, &pluginv1.LabelChange{Key: k, Text: text, Type: int32(typ)})
	}
	for _, l := range before {
		if _, ok := now[l.key]; !ok {
			out = append(out, &pluginv1.LabelChange{Key: l.key, Deleted: true})
		}
	}
	return out
}

func find(labels []label, key string) (any, bool) {
	for _, l := range labels {
		if l.key == key {
			return l.val, true
		}
	}
	return nil, false
}

// sameScalar reports whether a and b are equal strings, integers, booleans
// or numbers of the same Go type; false says nothing about other values.
func sameScalar(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case int64:
		y, ok := b.(int64)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	}
	return false
}

// sameMessageLabel reports whether a and b travel as the same text and type.
func sameMessageLabel(a, b any) bool {
	if sameScalar(a, b) {
		return true
	}
	ta, ya := wire.LabelText(a)
	tb, yb := wire.LabelText(b)
	return ta == tb && ya == yb
}

// resultSnapshot is what a result was before a hook ran.
type resultSnapshot struct {
	isErr    bool
	hasLog   bool
	log      string
	ret      json.RawMessage
	execTime float64
	labels   []label
	ok       bool // false: it has an error, or too many labels to compare
}

func snapshotResult(r *wire.Result) resultSnapshot {
	if r.Error != nil || len(r.Labels) > maxSnapshotLabels {
		return resultSnapshot{}
	}
	s := resultSnapshot{isErr: r.IsErr, ret: r.ReturnValue, execTime: r.ExecutionTime, ok: true}
	if r.Log != nil {
		s.hasLog, s.log = true, *r.Log
	}
	s.labels = snapshotLabels(r.Labels)
	return s
}

// labelsOnly reports whether r differs from the snapshot in its labels at
// most.
func (s *resultSnapshot) labelsOnly(r *wire.Result) bool {
	return s.ok && r.Error == nil && r.IsErr == s.isErr && (r.Log != nil) == s.hasLog &&
		(r.Log == nil || *r.Log == s.log) && bytes.Equal(r.ReturnValue, s.ret) &&
		(r.ExecutionTime == s.execTime || math.IsNaN(r.ExecutionTime) && math.IsNaN(s.execTime)) &&
		len(r.Labels) <= maxSnapshotLabels
}

// resultLabelChanges lists the labels of now that differ from before, each
// with its JSON; ok is false when a value does not encode (the whole
// result then goes back, and its encoding reports the error).
func resultLabelChanges(before []label, now map[string]any) (out []*pluginv1.LabelChange, ok bool) {
	for k, v := range now {
		old, found := find(before, k)
		if found && sameScalar(old, v) {
			continue
		}
		enc, err := wire.AppendResultLabel(nil, v)
		if err != nil {
			return nil, false
		}
		if found {
			if prev, err := wire.AppendResultLabel(nil, old); err == nil && bytes.Equal(prev, enc) {
				continue
			}
		}
		out = append(out, &pluginv1.LabelChange{Key: k, Value: enc})
	}
	for _, l := range before {
		if _, ok := now[l.key]; !ok {
			out = append(out, &pluginv1.LabelChange{Key: l.key, Deleted: true})
		}
	}
	return out, true
}

// applyMessageLabels applies a hook's label changes to m's labels in place,
// as a middleware running in the host's process changes them (core's
// kicker and worker give each message a map of its own).
func applyMessageLabels(m *wire.Message, changes []*pluginv1.LabelChange) {
	labels := m.Labels
	if labels == nil {
		labels = make(map[string]any, len(changes))
	}
	for _, c := range changes {
		if c.Deleted {
			delete(labels, c.Key)
			continue
		}
		labels[c.Key] = wire.LabelFromText(c.Text, int(c.Type))
	}
	m.Labels = labels
}

// applyResultLabels applies a hook's label changes to r's labels in place,
// as applyMessageLabels does. Every value is checked before the first is
// applied, so a bad answer changes nothing.
func applyResultLabels(r *wire.Result, changes []*pluginv1.LabelChange) error {
	values := make([]any, len(changes))
	for i, c := range changes {
		if c.Deleted {
			continue
		}
		v, err := wire.DecodeResultLabel(c.Value)
		if err != nil {
			return fmt.Errorf("label %q: %w", c.Key, err)
		}
		values[i] = v
	}
	labels := r.Labels
	if labels == nil {
		labels = make(map[string]any, len(changes))
	}
	for i, c := range changes {
		if c.Deleted {
			delete(labels, c.Key)
			continue
		}
		labels[c.Key] = values[i]
	}
	r.Labels = labels
	return nil
}
