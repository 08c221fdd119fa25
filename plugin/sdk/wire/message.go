package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/taskiq-go/taskiq/internal/plainjson"
)

// Label types of the labels_types field (taskiq's LabelType enum).
const (
	LabelAny   = 1
	LabelInt   = 2
	LabelStr   = 3
	LabelFloat = 4
	LabelBool  = 5
	LabelBytes = 6
)

// Labels with a meaning to the host, brokers or middlewares.
const (
	LabelTimeout      = "timeout"
	LabelAckType      = "ack_type"
	LabelRetryOnError = "retry_on_error"
	LabelMaxRetries   = "max_retries"
	LabelRetries      = "_retries"
	LabelDelay        = "delay"
	LabelPriority     = "priority"
	LabelQueueName    = "queue_name"
	LabelSchedule     = "schedule"
	LabelScheduleID   = "schedule_id"
	LabelRequeue      = "X-Taskiq-requeue"
)

// Labels of the telemetry middlewares, in the spelling Python taskiq's use,
// so that a message kicked by either side is measured and traced by the
// other.
const (
	// LabelQueueTime is the kick time in seconds since the epoch (a float),
	// as taskiq's OpenTelemetryMiddleware writes it.
	LabelQueueTime = "_taskiq_queue_time"
	// LabelEnqueueTimestamp is the kick time as an ISO 8601 string, as
	// taskiq's PrometheusMiddleware writes it.
	LabelEnqueueTimestamp = "_taskiq_enqueue_timestamp"
	// LabelTraceparent, LabelTracestate and LabelBaggage carry W3C trace
	// context and baggage: taskiq's OpenTelemetryMiddleware injects the
	// default propagators into the labels, so the keys are the header names.
	LabelTraceparent = "traceparent"
	LabelTracestate  = "tracestate"
	LabelBaggage     = "baggage"
)

// ErrMalformed is wrapped by every decoding error of a message or result.
var ErrMalformed = errors.New("malformed message")

// ErrInvalidUTF8 is wrapped, with ErrMalformed, by the error for a task_id
// or task_name that is not valid UTF-8 (raw bytes, or an escaped lone
// surrogate such as "\udcff"). Decoding would replace the bad part with
// U+FFFD, and the task's result would be stored under an id the producer
// never asks for.
var ErrInvalidUTF8 = errors.New("invalid UTF-8")

// Message is one task invocation, as carried by a broker.
//
// Label values are Go values: string, int64, float64, bool, []byte, or any
// value decoded from JSON (nil, []any, map[string]any) for labels that came
// without a type.
type Message struct {
	TaskID   string
	TaskName string
	Labels   map[string]any
	Args     []json.RawMessage
	Kwargs   map[string]json.RawMessage
}

// Clone returns a copy whose maps and slices can be changed independently.
func (m *Message) Clone() *Message {
	c := *m
	if m.Labels != nil {
		c.Labels = make(map[string]any, len(m.Labels))
		for k, v := range m.Labels {
			c.Labels[k] = v
		}
	}
	c.Args = append([]json.RawMessage(nil), m.Args...)
	if m.Kwargs != nil {
		c.Kwargs = make(map[string]json.RawMessage, len(m.Kwargs))
		for k, v := range m.Kwargs {
			c.Kwargs[k] = v
		}
	}
	return &c
}

// SetLabel sets a label, creating the map when needed.
func (m *Message) SetLabel(key string, value any) {
	if m.Labels == nil {
		m.Labels = make(map[string]any)
	}
	m.Labels[key] = value
}

// LabelString returns a label as a string: strings as they are, other values
// in their wire spelling. ok is false when the label is absent.
func (m *Message) LabelString(key string) (string, bool) {
	v, ok := m.Labels[key]
	if !ok {
		return "", false
	}
	s, _ := labelText(v)
	return s, true
}

// LabelInt returns a label as an integer, accepting an int, a whole float or a
// numeric string. ok is false when the label is absent or not an integer.
func (m *Message) LabelInt(key string) (int64, bool) {
	switch v := m.Labels[key].(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case float64:
		if v == math.Trunc(v) && !math.IsInf(v, 0) {
			return int64(v), true
		}
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			return i, true
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f == math.Trunc(f) {
			return int64(f), true
		}
	}
	return 0, false
}

// LabelFloat returns a label as a float, accepting numbers and numeric strings.
func (m *Message) LabelFloat(key string) (float64, bool) {
	switch v := m.Labels[key].(type) {
	case float64:
		return v, !math.IsNaN(v)
	case int64:
		return float64(v), true
	case int:
		return float64(v), true
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && !math.IsNaN(f) {
			return f, true
		}
	}
	return 0, false
}

// LabelBool returns a label as a bool, accepting booleans and the strings
// "true"/"false" in any case (Python writes "True"/"False").
func (m *Message) LabelBool(key string) (bool, bool) {
	switch v := m.Labels[key].(type) {
	case bool:
		return v, true
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1":
			return true, true
		case "false", "0":
			return false, true
		}
	case int64:
		return v != 0, true
	}
	return false, false
}

// labelText renders a label value as the string the wire carries and the
// label type recorded for it.
func labelText(v any) (string, int) {
	switch x := v.(type) {
	case string:
		return x, LabelStr
	case bool:
		if x {
			return "True", LabelBool
		}
		return "False", LabelBool
	case int:
		return strconv.Itoa(x), LabelInt
	case int32:
		return strconv.FormatInt(int64(x), 10), LabelInt
	case int64:
		return strconv.FormatInt(x, 10), LabelInt
	case uint:
		return strconv.FormatUint(uint64(x), 10), LabelInt
	case uint64:
		return strconv.FormatUint(x, 10), LabelInt
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), LabelFloat
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), LabelFloat
	case []byte:
		return base64.StdEncoding.EncodeToString(x), LabelBytes
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x), LabelAny
		}
		return string(b), LabelAny
	}
}

// labelTypeText are the label types as labels_types writes them.
var labelTypeText = [...]string{LabelAny: "1", LabelInt: "2", LabelStr: "3", LabelFloat: "4", LabelBool: "5", LabelBytes: "6"}

// writeLabelText writes the JSON string of v's labelText and returns its
// label type; numbers and booleans are formatted into buf, with no string
// made for them.
func writeLabelText(buf *bytes.Buffer, v any) int {
	var t int
	switch x := v.(type) {
	case string:
		writeJSONString(buf, x)
		return LabelStr
	case int, int64:
		t = LabelInt
	case float64:
		t = LabelFloat
	default:
		s, t := labelText(v)
		writeJSONString(buf, s)
		return t
	}
	// Digits need no escaping: they are appended in the quotes in place.
	buf.WriteByte('"')
	b := buf.AvailableBuffer()
	switch x := v.(type) {
	case int:
		b = strconv.AppendInt(b, int64(x), 10)
	case int64:
		b = strconv.AppendInt(b, x, 10)
	case float64:
		b = strconv.AppendFloat(b, x, 'g', -1, 64)
	}
	buf.Write(b)
	buf.WriteByte('"')
	return t
}

type rawMessage struct {
	TaskID      string                     `json:"task_id"`
	TaskName    string                     `json:"task_name"`
	Labels      map[string]json.RawMessage `json:"labels"`
	LabelsTypes map[string]int             `json:"labels_types"`
	Args        []json.RawMessage          `json:"args"`
	Kwargs      map[string]json.RawMessage `json:"kwargs"`
}

// MarshalJSON writes the message in taskiq's layout: every label as a string
// with its type in labels_types, keys in taskiq's order.
func (m *Message) MarshalJSON() ([]byte, error) {
	return m.AppendJSON(nil)
}

// AppendJSON appends the encoded message to dst. A task_id or task_name
// that is not valid UTF-8 is an error wrapping ErrInvalidUTF8: JSON would
// carry it as U+FFFD, and the result would be stored under another id.
func (m *Message) AppendJSON(dst []byte) ([]byte, error) {
	if !utf8.ValidString(m.TaskID) {
		return nil, fmt.Errorf("%w: task_id %q is not valid UTF-8", ErrInvalidUTF8, m.TaskID)
	}
	if !utf8.ValidString(m.TaskName) {
		return nil, fmt.Errorf("%w: task_name %q is not valid UTF-8", ErrInvalidUTF8, m.TaskName)
	}
	// One allocation of about the right size, not a 256-byte buffer
	// regrown and copied once labels (trace context, kick time) are on.
	size := 96 + len(m.TaskID) + len(m.TaskName) + labelsSize(m.Labels)
	for _, a := range m.Args {
		size += len(a) + 1
	}
	for k, v := range m.Kwargs {
		size += len(k) + len(v) + 4
	}
	buf := bytes.NewBuffer(slices.Grow(dst, size))
	buf.WriteString(`{"task_id":`)
	writeJSONString(buf, m.TaskID)
	buf.WriteString(`,"task_name":`)
	writeJSONString(buf, m.TaskName)
	var keyBuf [8]string // a typical message's labels, on the stack
	var typeBuf [8]int
	keys := appendSortedKeys(keyBuf[:0], m.Labels)
	buf.WriteString(`,"labels":{`)
	types := typeBuf[:0]
	if len(keys) > len(typeBuf) {
		types = make([]int, 0, len(keys))
	}
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeJSONString(buf, k)
		buf.WriteByte(':')
		types = append(types, writeLabelText(buf, m.Labels[k]))
	}
	buf.WriteString(`},"labels_types":{`)
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeJSONString(buf, k)
		buf.WriteByte(':')
		buf.WriteString(labelTypeText[types[i]])
	}
	buf.WriteString(`},"args":[`)
	for i, a := range m.Args {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := writeRaw(buf, a); err != nil {
			return nil, fmt.Errorf("arg %d: %w", i, err)
		}
	}
	buf.WriteString(`],"kwargs":{`)
	for i, k := range sortedKeys(m.Kwargs) {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeJSONString(buf, k)
		buf.WriteByte(':')
		if err := writeRaw(buf, m.Kwargs[k]); err != nil {
			return nil, fmt.Errorf("kwarg %q: %w", k, err)
		}
	}
	buf.WriteString(`}}`)
	return buf.Bytes(), nil
}

func writeRaw(buf *bytes.Buffer, r json.RawMessage) error {
	if len(r) == 0 {
		buf.WriteString("null")
		return nil
	}
	if !validJSON(r) {
		return errors.New("invalid JSON value")
	}
	buf.Write(r)
	return nil
}

// writeJSONString writes s as json.Marshal does; printable ASCII without
// characters it escapes is copied as it is.
func writeJSONString(buf *bytes.Buffer, s string) {
	b, ok := plainjson.AppendString(buf.AvailableBuffer(), s)
	if !ok {
		b, _ = json.Marshal(s)
	}
	buf.Write(b)
}

// UnmarshalJSON implements json.Unmarshaler with DecodeMessage's rules. It
// copies b, as json.Unmarshaler requires.
func (m *Message) UnmarshalJSON(b []byte) error {
	d, err := DecodeMessage(bytes.Clone(b))
	if err != nil {
		return err
	}
	*m = *d
	return nil
}

// DecodeMessage parses a message body. It accepts any valid JSON spelling,
// labels with or without a labels_types entry, and a missing or null
// labels_types. Errors wrap ErrMalformed and say what is wrong.
//
// The message's Args and Kwargs values may be slices of b, not copies: b
// must not be modified while the message is in use. (A delivery's body is
// never modified, so the worker decodes it in place.)
func DecodeMessage(b []byte) (*Message, error) {
	if m, ok := decodeMessageFast(b); ok {
		return m, nil
	}
	return decodeMessageStd(b)
}

// decodeMessageStd is DecodeMessage by encoding/json: every body the fast
// path gives up on, and the reference the fast path is tested against.
func decodeMessageStd(b []byte) (*Message, error) {
	var raw rawMessage
	// json.Unmarshal rejects trailing data itself.
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if raw.TaskName == "" {
		return nil, fmt.Errorf("%w: task_name is missing or empty", ErrMalformed)
	}
	if raw.TaskID == "" {
		return nil, fmt.Errorf("%w: task_id is missing or empty", ErrMalformed)
	}
	if strings.ContainsRune(raw.TaskID, utf8.RuneError) || strings.ContainsRune(raw.TaskName, utf8.RuneError) {
		if err := checkExactIDs(b); err != nil {
			return nil, err
		}
	}
	m := &Message{TaskID: raw.TaskID, TaskName: raw.TaskName, Args: raw.Args, Kwargs: raw.Kwargs}
	if len(raw.Labels) > 0 {
		m.Labels = make(map[string]any, len(raw.Labels))
		for k, v := range raw.Labels {
			m.Labels[k] = decodeLabel(v, raw.LabelsTypes[k])
		}
	}
	return m, nil
}

// checkExactIDs fails when task_id or task_name of body is not the text it
// spells: invalid UTF-8 that encoding/json turned into U+FFFD. It is called
// only when one of them holds U+FFFD, which a valid one may too (written as
// is or as "\ufffd"). The fields are read again as raw JSON with the same
// key matching as the first decoding, so they are the same members.
func checkExactIDs(body []byte) error {
	var ids struct {
		TaskID   json.RawMessage `json:"task_id"`
		TaskName json.RawMessage `json:"task_name"`
	}
	if err := json.Unmarshal(body, &ids); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"task_id", ids.TaskID}, {"task_name", ids.TaskName}} {
		if !exactJSONString(f.raw) {
			return fmt.Errorf("%w: %w: %s %q is not valid UTF-8; it would be changed to U+FFFD and the task's result stored under another id",
				ErrMalformed, ErrInvalidUTF8, f.name, f.raw[1:len(f.raw)-1])
		}
	}
	return nil
}

// exactJSONString reports whether the JSON string s (quotes included)
// decodes without replacement: its bytes are valid UTF-8 and every \u
// escape of a surrogate is half of a pair.
func exactJSONString(s []byte) bool {
	if !utf8.Valid(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++
		if i >= len(s) || s[i] != 'u' {
			continue // a one-letter escape
		}
		r, ok := hex4(s, i+1)
		if !ok {
			return false
		}
		i += 4
		switch {
		case utf16.IsSurrogate(r) && r < 0xdc00: // high half: a low half must follow
			if i+6 >= len(s) || s[i+1] != '\\' || s[i+2] != 'u' {
				return false
			}
			lo, ok := hex4(s, i+3)
			if !ok || utf16.DecodeRune(r, lo) == utf8.RuneError {
				return false
			}
			i += 6
		case utf16.IsSurrogate(r): // a low half alone
			return false
		}
	}
	return true
}

// hex4 reads the four hex digits at s[i:].
func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s[i:i+4]), 16, 16)
	return rune(n), err == nil
}

// decodeLabel converts one label. A typed string that does not parse as its
// declared type stays a string: hostile or sloppy producers must not make a
// message undecodable.
func decodeLabel(v json.RawMessage, typ int) any {
	s, isStr := jsonString(v)
	if !isStr {
		return decodeJSONValue(v)
	}
	return typedLabel(s, typ)
}

// typedLabel converts a label's text by its declared type.
func typedLabel(s string, typ int) any {
	switch typ {
	case LabelInt:
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
	case LabelFloat:
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	case LabelBool:
		switch strings.ToLower(s) {
		case "true":
			return true
		case "false":
			return false
		}
	case LabelBytes:
		if b, err := base64.StdEncoding.DecodeString(s); err == nil {
			return b
		}
	}
	return s
}

// jsonString returns v's string when v is a JSON string; escape-free, valid
// UTF-8 strings (nearly every label) are sliced without a decoder. Invalid
// UTF-8 takes the decoder, which replaces it with U+FFFD as it does in every
// other field, so a label decodes the same with or without an escape in it
// and survives re-encoding.
func jsonString(v json.RawMessage) (string, bool) {
	if s, ok := plainjson.Text(v); ok {
		return s, true
	}
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// decodeJSONValue decodes a label that is not a string: numbers become int64
// (when integral) or float64, anything else what encoding/json makes of it.
func decodeJSONValue(v json.RawMessage) any {
	switch string(v) {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return i
	}
	var x any
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return string(v)
	}
	return normalizeJSON(x)
}

// normalizeJSON turns json.Number into int64 (when integral) or float64,
// recursively.
func normalizeJSON(x any) any {
	switch v := x.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = normalizeJSON(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = normalizeJSON(v[k])
		}
	}
	return x
}
