package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// pythonMessage is a message as Python taskiq writes it (json.dumps with its
// default ", " and ": " separators and ensure_ascii escapes), with one label
// of every labels_types type 1-6 and non-ASCII text escaped as \uXXXX,
// including a surrogate pair.
const pythonMessage = `{"task_id": "5f1c0e7d9a2b4c6e8f0a1b2c3d4e5f60", "task_name": "math:add", ` +
	`"labels": {"any_label": "{'a': 1}", "max_retries": "3", "queue_name": "low", "delay": "1.5", ` +
	`"retry_on_error": "True", "blob": "aGVsbG8gd29ybGQ=", "greeting": "caf\u00e9 \u2603 \ud83d\ude00 \"q\" \\ \n"}, ` +
	`"labels_types": {"any_label": 1, "max_retries": 2, "queue_name": 3, "delay": 4, ` +
	`"retry_on_error": 5, "blob": 6, "greeting": 3}, ` +
	`"args": [1, 2], "kwargs": {"round": true, "name": "\u00fcber"}}`

func TestDecodePythonMessage(t *testing.T) {
	t.Parallel()
	m, err := wire.DecodeMessage([]byte(pythonMessage))
	require.NoError(t, err)
	require.Equal(t, "5f1c0e7d9a2b4c6e8f0a1b2c3d4e5f60", m.TaskID)
	require.Equal(t, "math:add", m.TaskName)
	require.Equal(t, map[string]any{
		"any_label":      "{'a': 1}", // type 1 (Python repr) stays a string
		"max_retries":    int64(3),
		"queue_name":     "low",
		"delay":          1.5,
		"retry_on_error": true,
		"blob":           []byte("hello world"),
		"greeting":       "café ☃ 😀 \"q\" \\ \n",
	}, m.Labels)
	require.Equal(t, []json.RawMessage{json.RawMessage("1"), json.RawMessage("2")}, m.Args)
	require.Equal(t, map[string]json.RawMessage{
		"round": json.RawMessage("true"),
		"name":  json.RawMessage(`"\u00fcber"`), // arguments stay raw for the task's decoder
	}, m.Kwargs)
}

func TestDecodeLabelsWithoutTypes(t *testing.T) {
	t.Parallel()
	// Labels added by middlewares after the conversion, or carried by a
	// requeued message, are plain JSON values with no labels_types entry.
	untyped := `"labels": {"max_retries": 3, "retry_on_error": true, "delay": 1.5, "big": 12345678901234567890, ` +
		`"meta": {"a": [1, "x"]}, "none": null, "name": "n"}`
	want := map[string]any{
		"max_retries":    int64(3),
		"retry_on_error": true,
		"delay":          1.5,
		"big":            12345678901234567890.0, // beyond int64: the nearest float64
		"meta":           map[string]any{"a": []any{int64(1), "x"}},
		"none":           nil,
		"name":           "n",
	}
	for name, src := range map[string]string{
		"labels_types missing": `{"task_id": "t", "task_name": "n", ` + untyped + `, "args": [], "kwargs": {}}`,
		"labels_types null":    `{"task_id": "t", "task_name": "n", ` + untyped + `, "labels_types": null, "args": [], "kwargs": {}}`,
		"labels_types partial": `{"task_id": "t", "task_name": "n", ` + untyped + `, "labels_types": {"name": 3, "max_retries": 2}, "args": [], "kwargs": {}}`,
		"labels_types empty":   `{"task_id": "t", "task_name": "n", ` + untyped + `, "labels_types": {}}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m, err := wire.DecodeMessage([]byte(src))
			require.NoError(t, err)
			require.Equal(t, want, m.Labels)
		})
	}
}

func TestDecodeMixedLabels(t *testing.T) {
	t.Parallel()
	// A string label without a type stays a string, however numeric it
	// looks; the typed accessors still read it.
	m, err := wire.DecodeMessage([]byte(`{"task_id":"t","task_name":"n","labels":{"timeout":"2.5","max_retries":"4","retry_on_error":"false","typed":"4"},"labels_types":{"typed":2}}`))
	require.NoError(t, err)
	require.Equal(t, "2.5", m.Labels["timeout"])
	require.Equal(t, int64(4), m.Labels["typed"])
	f, ok := m.LabelFloat("timeout")
	require.True(t, ok)
	require.Equal(t, 2.5, f)
	n, ok := m.LabelInt("max_retries")
	require.True(t, ok)
	require.Equal(t, int64(4), n)
	b, ok := m.LabelBool("retry_on_error")
	require.True(t, ok)
	require.False(t, b)
	_, ok = m.LabelInt("absent")
	require.False(t, ok)
}

func TestDecodeBoolLabelsCaseInsensitive(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]bool{"True": true, "true": true, "TRUE": true, "False": false, "false": false, "fAlSe": false} {
		m, err := wire.DecodeMessage([]byte(`{"task_id":"t","task_name":"n","labels":{"b":"` + text + `"},"labels_types":{"b":5}}`))
		require.NoError(t, err)
		require.Equal(t, want, m.Labels["b"], text)
	}
}

func TestDecodeHostileTypedLabelsStayStrings(t *testing.T) {
	t.Parallel()
	// A value that does not parse as its declared type must not make the
	// message undecodable: it stays the string it was.
	m, err := wire.DecodeMessage([]byte(`{"task_id": "t", "task_name": "n", ` +
		`"labels": {"i": "three", "f": "1,5", "b": "yes", "y": "!!not base64", "huge": "99999999999999999999", "unknown": "x"}, ` +
		`"labels_types": {"i": 2, "f": 4, "b": 5, "y": 6, "huge": 2, "unknown": 42}}`))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"i": "three", "f": "1,5", "b": "yes", "y": "!!not base64", "huge": "99999999999999999999", "unknown": "x"}, m.Labels)
}

func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]string{
		"empty":               ``,
		"garbage":             "\x00\xff garbage",
		"truncated":           pythonMessage[:len(pythonMessage)/2],
		"not an object":       `[1, 2]`,
		"trailing data":       `{"task_id":"t","task_name":"n"} {}`,
		"task_name missing":   `{"task_id":"t"}`,
		"task_name empty":     `{"task_id":"t","task_name":""}`,
		"task_id missing":     `{"task_name":"n"}`,
		"task_id a number":    `{"task_id":5,"task_name":"n"}`,
		"args an object":      `{"task_id":"t","task_name":"n","args":{"a":1}}`,
		"kwargs a list":       `{"task_id":"t","task_name":"n","kwargs":[1]}`,
		"labels a list":       `{"task_id":"t","task_name":"n","labels":["a"]}`,
		"labels_types string": `{"task_id":"t","task_name":"n","labels":{"a":"1"},"labels_types":{"a":"int"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m, err := wire.DecodeMessage([]byte(src))
			require.Nil(t, m)
			require.ErrorIs(t, err, wire.ErrMalformed)
			require.NotEmpty(t, strings.TrimPrefix(err.Error(), wire.ErrMalformed.Error()), "the error says what is wrong")
		})
	}
}

// TestEncodeExactBytes pins the encoder's output: taskiq's key order, every
// label as a string with its type, label keys and kwargs sorted so the
// encoding is deterministic.
func TestEncodeExactBytes(t *testing.T) {
	t.Parallel()
	m := &wire.Message{
		TaskID:   "0123456789abcdef0123456789abcdef",
		TaskName: "tasks:send",
		Labels: map[string]any{
			"retry_on_error": true,
			"keep":           false,
			"max_retries":    3,
			"_retries":       int64(-2),
			"delay":          1.5,
			"whole":          2.0,
			"tiny":           1e-7,
			"queue_name":     "low",
			"blob":           []byte{0, 1, 0xfe, 0xff},
			"meta":           map[string]any{"a": 1},
			"uni":            "café\t☃",
		},
		Args:   []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`"two"`), nil},
		Kwargs: map[string]json.RawMessage{"b": json.RawMessage(`[1,2]`), "a": json.RawMessage(`{"x":null}`)},
	}
	got, err := m.MarshalJSON()
	require.NoError(t, err)
	want := `{"task_id":"0123456789abcdef0123456789abcdef","task_name":"tasks:send",` +
		`"labels":{"_retries":"-2","blob":"AAH+/w==","delay":"1.5","keep":"False","max_retries":"3","meta":"{\"a\":1}",` +
		`"queue_name":"low","retry_on_error":"True","tiny":"1e-07","uni":"café\t☃","whole":"2"},` +
		`"labels_types":{"_retries":2,"blob":6,"delay":4,"keep":5,"max_retries":2,"meta":1,"queue_name":3,"retry_on_error":5,"tiny":4,"uni":3,"whole":4},` +
		`"args":[1,"two",null],"kwargs":{"a":{"x":null},"b":[1,2]}}`
	require.Equal(t, want, string(got))

	// AppendJSON appends to what is there.
	appended, err := m.AppendJSON([]byte("prefix:"))
	require.NoError(t, err)
	require.Equal(t, "prefix:"+want, string(appended))

	// Up to eight labels are listed on the stack; the bytes are the same.
	small := &wire.Message{TaskID: "id", TaskName: "t", Labels: map[string]any{
		"whole": 2.0, "tiny": 1e-7, "max_retries": 3, "_retries": int64(-2), "uni": "café\t☃", "keep": false,
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "_taskiq_queue_time": 1764772800.123456}}
	got, err = small.AppendJSON(nil)
	require.NoError(t, err)
	require.Equal(t, `{"task_id":"id","task_name":"t","labels":{"_retries":"-2","_taskiq_queue_time":"1.764772800123456e+09",`+
		`"keep":"False","max_retries":"3","tiny":"1e-07","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",`+
		`"uni":"café\t☃","whole":"2"},"labels_types":{"_retries":2,"_taskiq_queue_time":4,"keep":5,"max_retries":2,"tiny":4,`+
		`"traceparent":3,"uni":3,"whole":4},"args":[],"kwargs":{}}`, string(got))
}

func TestEncodeEmptyMessage(t *testing.T) {
	t.Parallel()
	got, err := (&wire.Message{TaskID: "t", TaskName: "n"}).MarshalJSON()
	require.NoError(t, err)
	// Python's receiver indexes labels, labels_types, args and kwargs
	// directly, so they are always present.
	require.Equal(t, `{"task_id":"t","task_name":"n","labels":{},"labels_types":{},"args":[],"kwargs":{}}`, string(got))
}

func TestEncodeRejectsInvalidArguments(t *testing.T) {
	t.Parallel()
	_, err := (&wire.Message{TaskID: "t", TaskName: "n", Args: []json.RawMessage{json.RawMessage(`{`)}}).MarshalJSON()
	require.ErrorContains(t, err, "arg 0")
	_, err = (&wire.Message{TaskID: "t", TaskName: "n", Kwargs: map[string]json.RawMessage{"k": json.RawMessage(`nope`)}}).MarshalJSON()
	require.ErrorContains(t, err, `kwarg "k"`)
}

// TestRoundTrip goes Go → wire → Go for every label type and checks that
// Python's reading of the same bytes (labels_types) agrees.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	m := &wire.Message{
		TaskID:   "id",
		TaskName: "pkg.task",
		Labels: map[string]any{
			"s": "text with \"quotes\" and ünïcode 😀", "i": int64(math.MinInt64), "f": -0.125,
			"inf": math.Inf(-1), "t": true, "fl": false, "b": []byte("\x00binary\xff"), "e": "",
		},
		Args:   []json.RawMessage{json.RawMessage(`{"nested":[1,2,{"x":"y"}]}`)},
		Kwargs: map[string]json.RawMessage{"k": json.RawMessage(`3.25`)},
	}
	enc, err := json.Marshal(m) // through json.Marshaler, as a caller would
	require.NoError(t, err)
	var back wire.Message
	require.NoError(t, json.Unmarshal(enc, &back))
	require.Equal(t, m.TaskID, back.TaskID)
	require.Equal(t, m.TaskName, back.TaskName)
	require.Equal(t, m.Labels, back.Labels)
	require.Equal(t, m.Args, back.Args)
	require.Equal(t, m.Kwargs, back.Kwargs)

	// What Python reads: a string per label, and its type.
	var raw struct {
		Labels      map[string]string `json:"labels"`
		LabelsTypes map[string]int    `json:"labels_types"`
	}
	require.NoError(t, json.Unmarshal(enc, &raw))
	require.Equal(t, map[string]int{"s": 3, "i": 2, "f": 4, "inf": 4, "t": 5, "fl": 5, "b": 6, "e": 3}, raw.LabelsTypes)
	require.Equal(t, "-9223372036854775808", raw.Labels["i"])
	require.Equal(t, "-0.125", raw.Labels["f"])
	require.Equal(t, "-Inf", raw.Labels["inf"])
	require.Equal(t, "True", raw.Labels["t"])
	require.Equal(t, "False", raw.Labels["fl"])
	require.Equal(t, "AGJpbmFyef8=", raw.Labels["b"])
}

func TestUnmarshalJSONReportsMalformed(t *testing.T) {
	t.Parallel()
	var m wire.Message
	err := json.Unmarshal([]byte(`{"task_id":"x"}`), &m)
	require.True(t, errors.Is(err, wire.ErrMalformed), "got %v", err)
}

func TestCloneIsIndependent(t *testing.T) {
	t.Parallel()
	m := &wire.Message{TaskID: "t", TaskName: "n", Labels: map[string]any{"a": "1"},
		Args: []json.RawMessage{json.RawMessage("1")}, Kwargs: map[string]json.RawMessage{"k": json.RawMessage("2")}}
	c := m.Clone()
	c.SetLabel("a", "changed")
	c.SetLabel("b", "new")
	c.Args[0] = json.RawMessage("9")
	c.Kwargs["k"] = json.RawMessage("9")
	require.Equal(t, map[string]any{"a": "1"}, m.Labels)
	require.Equal(t, json.RawMessage("1"), m.Args[0])
	require.Equal(t, json.RawMessage("2"), m.Kwargs["k"])

	var empty wire.Message
	empty.SetLabel("x", 1)
	require.Equal(t, map[string]any{"x": 1}, empty.Labels, "SetLabel creates the map")
}

func TestLabelAccessors(t *testing.T) {
	t.Parallel()
	m := &wire.Message{Labels: map[string]any{
		"int": int64(7), "goint": 8, "wholefloat": 9.0, "frac": 9.5, "numstr": " 10 ", "floatstr": "11.0",
		"bool": true, "boolstr": "True", "one": "1", "zero": int64(0), "nan": math.NaN(), "junk": "x",
		"bytes": []byte("hi"),
	}}
	for key, want := range map[string]int64{"int": 7, "goint": 8, "wholefloat": 9, "numstr": 10, "floatstr": 11} {
		got, ok := m.LabelInt(key)
		require.True(t, ok, key)
		require.Equal(t, want, got, key)
	}
	for _, key := range []string{"frac", "junk", "bool", "nan"} {
		_, ok := m.LabelInt(key)
		require.False(t, ok, key)
	}
	f, ok := m.LabelFloat("frac")
	require.True(t, ok)
	require.Equal(t, 9.5, f)
	_, ok = m.LabelFloat("nan")
	require.False(t, ok, "NaN is not a usable number")
	for key, want := range map[string]bool{"bool": true, "boolstr": true, "one": true, "zero": false} {
		got, ok := m.LabelBool(key)
		require.True(t, ok, key)
		require.Equal(t, want, got, key)
	}
	_, ok = m.LabelBool("junk")
	require.False(t, ok)
	s, ok := m.LabelString("bool")
	require.True(t, ok)
	require.Equal(t, "True", s)
	s, ok = m.LabelString("bytes")
	require.True(t, ok)
	require.Equal(t, "aGk=", s)
	_, ok = m.LabelString("absent")
	require.False(t, ok)
}

// TestInvalidUTF8LabelDecodesLikeOtherFields is the fuzzer's first find: a
// label with invalid UTF-8 and no escape kept its raw bytes (a fast path
// skipped the JSON decoder), while the same label with an escape had them
// replaced by U+FFFD; re-encoding then changed it. Labels are user data, and
// U+FFFD is what every JSON decoder makes of such bytes (see WIRE.md).
func TestInvalidUTF8LabelDecodesLikeOtherFields(t *testing.T) {
	t.Parallel()
	m, err := wire.DecodeMessage([]byte("{\"task_id\":\"i\",\"task_name\":\"n\",\"labels\":{\"a\":\"\xe0\",\"b\":\"\\n\xe0\"}}"))
	require.NoError(t, err)
	require.Equal(t, "\uFFFD", m.Labels["a"])
	require.Equal(t, "\n\uFFFD", m.Labels["b"])
}

// A task_id or task_name that is not valid UTF-8 would decode to another
// string (U+FFFD in place of the bad part), and the result would land under
// a key the producer never reads: it is an error, on the fast path and the
// encoding/json path alike, whether the bytes are raw or an escaped lone
// surrogate. A real U+FFFD, written as is or escaped, is valid.
func TestInvalidUTF8TaskIDIsAnError(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"raw byte in id":          "{\"task_id\":\"ab\xff\",\"task_name\":\"n\"}",
		"raw byte in name":        "{\"task_id\":\"i\",\"task_name\":\"n\xc3\"}",
		"truncated rune, escaped": "{\"task_id\":\"\\n\xe2\x82\",\"task_name\":\"n\"}",
		"lone low surrogate":      `{"task_id":"a\udcff","task_name":"n"}`,
		"lone high surrogate":     `{"task_id":"a\ud800b","task_name":"n"}`,
		"high then non-low":       `{"task_id":"\ud800\u0041","task_name":"n"}`,
		"high at the end":         `{"task_id":"i","task_name":"\uD800"}`,
		"upper-case key":          "{\"TASK_ID\":\"\xff\",\"task_name\":\"n\"}",
	} {
		_, err := wire.DecodeMessage([]byte(body))
		require.ErrorIs(t, err, wire.ErrInvalidUTF8, name)
		require.ErrorIs(t, err, wire.ErrMalformed, name)
		require.Contains(t, err.Error(), "is not valid UTF-8", name)
		_, err = wire.DecodeMessageStd([]byte(body))
		require.ErrorIs(t, err, wire.ErrInvalidUTF8, name)
	}
	for body, id := range map[string]string{
		"{\"task_id\":\"a\uFFFD\",\"task_name\":\"n\"}":       "a\uFFFD",
		`{"task_id":"a\ufffd","task_name":"n"}`:               "a\uFFFD",
		`{"task_id":"\ud83d\ude00\uFFFD","task_name":"n"}`:    "\U0001F600\uFFFD",
		"{\"task_id\":\"\\u00e9\uFFFD\",\"task_name\":\"n\"}": "\u00e9\uFFFD",
	} {
		m, err := wire.DecodeMessage([]byte(body))
		require.NoError(t, err, body)
		require.Equal(t, id, m.TaskID, body)
	}
}

// A producer cannot send what a worker would have to refuse: encoding a
// task_id or task_name that is not valid UTF-8 fails.
func TestEncodeRefusesInvalidUTF8TaskID(t *testing.T) {
	t.Parallel()
	for _, m := range []*wire.Message{{TaskID: "a\xff", TaskName: "n"}, {TaskID: "i", TaskName: "\xc3"}} {
		_, err := m.MarshalJSON()
		require.ErrorIs(t, err, wire.ErrInvalidUTF8)
	}
}

// The fast path of DecodeMessage must take what producers actually send,
// or it buys nothing: our own encoding, Python taskiq's (spaces, escaped
// non-ASCII label values) and the odd legal variants below. Each must also
// decode exactly as encoding/json decodes it.
func TestDecodeMessageFastPathTakesProducerLayouts(t *testing.T) {
	t.Parallel()
	ours := &wire.Message{TaskID: "id", TaskName: "pkg:task",
		Labels: map[string]any{"n": int64(3), "f": 1.5, "b": true, "s": "x", "raw": []byte{0, 1}},
		Args:   []json.RawMessage{json.RawMessage(`{"a":[1,"\u00e9",null]}`), json.RawMessage(`-1.5e3`)},
		Kwargs: map[string]json.RawMessage{"k": json.RawMessage(`"v"`)}}
	enc, err := ours.MarshalJSON()
	require.NoError(t, err)
	for name, body := range map[string]string{
		"ours":        string(enc),
		"python":      pythonMessage,
		"minimal":     `{"task_id":"a","task_name":"b"}`,
		"nulls":       `{"task_id":"a","task_name":"b","labels":null,"args":null,"kwargs":null}`,
		"empty":       "\n{ \"task_id\" : \"a\" , \"task_name\":\"b\",\"labels\":{},\"labels_types\":{},\"args\":[],\"kwargs\":{} }\t",
		"reordered":   `{"kwargs":{"x":[[]]},"args":[true,false],"labels_types":{"l":2},"labels":{"l":"7"},"task_name":"b","task_id":"a"}`,
		"untyped":     `{"task_id":"a","task_name":"b","labels":{"x":1,"y":[1,{"z":null}],"n":null}}`,
		"unicode_ids": "{\"task_id\":\"caf\u00e9\",\"task_name\":\"t\u2603\"}",
	} {
		_, ok := wire.DecodeMessageFast([]byte(body))
		require.True(t, ok, "%s: the fast path gave up on %s", name, body)
		fast, _ := wire.DecodeMessageFast([]byte(body))
		std, err := wire.DecodeMessageStd([]byte(body))
		require.NoError(t, err, name)
		require.Equal(t, std, fast, name)
	}
	// And it leaves what it cannot vouch for to encoding/json, which decides.
	for name, body := range map[string]string{
		"escaped key":   `{"task_\u0069d":"a","task_name":"b"}`,
		"case":          `{"Task_ID":"a","task_name":"b"}`,
		"duplicate":     `{"task_id":"a","task_id":"b","task_name":"b"}`,
		"escaped id":    `{"task_id":"a\nb","task_name":"b"}`,
		"bad utf8":      "{\"task_id\":\"\xff\",\"task_name\":\"b\"}",
		"trailing":      `{"task_id":"a","task_name":"b"} x`,
		"float type":    `{"task_id":"a","task_name":"b","labels":{"l":"1"},"labels_types":{"l":2.0}}`,
		"missing name":  `{"task_id":"a"}`,
		"bad arg":       `{"task_id":"a","task_name":"b","args":[01]}`,
		"unknown field": `{"task_id":"a","task_name":"b","extra":1}`,
	} {
		_, ok := wire.DecodeMessageFast([]byte(body))
		require.False(t, ok, "%s: the fast path took %s", name, body)
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	m := &wire.Message{TaskID: "0123456789abcdef0123456789abcdef", TaskName: "bench:noop",
		Labels: map[string]any{"timeout": int64(30), "queue_name": "default"},
		Args:   []json.RawMessage{json.RawMessage(`12345`)}, Kwargs: map[string]json.RawMessage{}}
	body, err := m.MarshalJSON()
	require.NoError(b, err)
	for name, decode := range map[string]func([]byte) (*wire.Message, error){
		"DecodeMessage": wire.DecodeMessage, "encoding-json": wire.DecodeMessageStd,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// DecodeMessage may slice args out of the body; appending to one must not
// overwrite the next, and UnmarshalJSON, whose caller may reuse its buffer,
// keeps nothing of it.
func TestDecodedArgsDoNotShareWritableMemory(t *testing.T) {
	t.Parallel()
	body := []byte(`{"task_id":"a","task_name":"b","args":[1,2],"kwargs":{"k":3}}`)
	m, err := wire.DecodeMessage(body)
	require.NoError(t, err)
	_ = append(m.Args[0], '9', '9')
	require.Equal(t, "2", string(m.Args[1]))

	var u wire.Message
	require.NoError(t, json.Unmarshal(body, &u))
	copy(body, bytes.Repeat([]byte{'x'}, len(body)))
	require.Equal(t, "1", string(u.Args[0]))
	require.Equal(t, "3", string(u.Kwargs["k"]))
}
