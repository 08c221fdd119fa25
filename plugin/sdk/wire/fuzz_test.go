package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ and run with every
// `go test`; the f.Add seeds below are the hand-written minimum that makes
// each fuzzer meaningful even without them.

// FuzzDecodeMessage feeds arbitrary bytes to DecodeMessage. It must never
// panic; a failure must wrap ErrMalformed; a decoded message must encode,
// and decoding that encoding must give the same message (labels that came
// as untyped JSON objects, arrays or null are written back as their JSON
// text, which is the documented normalisation).
func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(pythonMessage))
	f.Add([]byte(`{"task_id":"a","task_name":"b","labels":{"x":1,"y":[1,{"z":null}],"n":null},"args":null,"kwargs":null}`))
	f.Add([]byte(`{"task_id":"a","task_name":"b","labels":{"i":"12","f":"NaN","b":"TRUE","y":"YWJj"},"labels_types":{"i":2,"f":4,"b":5,"y":6}}`))
	f.Add([]byte(`{"task_id":"a"`))
	f.Add([]byte("{\"task_id\":\"a\xff\",\"task_name\":\"b\"}"))
	f.Add([]byte(`{"task_id":"\ud800\udc00\udcff","task_name":"b\ufffd"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		requireFastMatchesStd(t, data)
		m, err := wire.DecodeMessage(data)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("decode error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		enc, err := m.MarshalJSON()
		if err != nil {
			t.Fatalf("a decoded message does not encode: %v\ninput: %q", err, data)
		}
		m2, err := wire.DecodeMessage(enc)
		if err != nil {
			t.Fatalf("our own encoding does not decode: %v\ninput:   %q\nencoded: %q", err, data, enc)
		}
		requireSameMessage(t, normalized(m), m2, data, enc)
		// Encoding reaches a fixed point: the first round may turn type 1
		// (any) labels into type 3 (str) strings, which Python reads alike;
		// from then on the bytes do not change.
		enc2, err := m2.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		m3, err := wire.DecodeMessage(enc2)
		if err != nil {
			t.Fatal(err)
		}
		enc3, err := m3.MarshalJSON()
		if err != nil || !bytes.Equal(enc2, enc3) {
			t.Fatalf("encoding is not stable (err %v):\nsecond: %q\nthird:  %q", err, enc2, enc3)
		}
		// The typed accessors never panic on whatever the labels hold.
		for k := range m.Labels {
			m.LabelString(k)
			m.LabelInt(k)
			m.LabelFloat(k)
			m.LabelBool(k)
		}
	})
}

// requireFastMatchesStd checks DecodeMessage's fast path against the
// encoding/json path: when the fast path accepts a body, encoding/json must
// accept it too and decode the same message, nil and empty collections
// alike.
func requireFastMatchesStd(t *testing.T, data []byte) {
	t.Helper()
	fast, ok := wire.DecodeMessageFast(data)
	if !ok {
		return
	}
	std, err := wire.DecodeMessageStd(data)
	if err != nil {
		t.Fatalf("the fast path accepted a body encoding/json rejects (%v): %q", err, data)
	}
	requireSameMessage(t, std, fast, data, nil)
	if (std.Labels == nil) != (fast.Labels == nil) || (std.Args == nil) != (fast.Args == nil) ||
		(std.Kwargs == nil) != (fast.Kwargs == nil) {
		t.Fatalf("nil vs empty differs:\nstd:  %#v\nfast: %#v\ninput: %q", std, fast, data)
	}
	for k, v := range std.Labels {
		if fmt.Sprintf("%T", v) != fmt.Sprintf("%T", fast.Labels[k]) {
			t.Fatalf("label %q: std %#v, fast %#v\ninput: %q", k, v, fast.Labels[k], data)
		}
	}
}

// FuzzValidJSON checks the raw-value validator against json.Valid.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`1`, `-0.5e+3`, `"a\u00e9"`, `[1,{"a":[null,true,false]}]`, `{"a":1,}`, `01`, "\"\x01\"", ` [ ] `, `1 2`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := wire.ValidJSON(data), json.Valid(data); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid = %v", data, got, want)
		}
	})
}

// FuzzLabels sets one label of every Go kind a label may hold, encodes the
// message and decodes it again: the value must come back with its type and
// value (the label conversion of WIRE.md, both directions). It also reads
// the same value as an untyped string with each declared type, which is what
// a Python producer sends.
func FuzzLabels(f *testing.F) {
	f.Add(uint8(0), "hello", int64(3), 1.5, true, 2)
	f.Add(uint8(1), "", int64(-1), math.Inf(1), false, 4)
	f.Add(uint8(2), "True", int64(math.MaxInt64), math.Copysign(0, -1), true, 5)
	f.Add(uint8(3), "caf\u00e9 \U0001F600 \"q\" \\ \x00", int64(math.MinInt64), 1e-300, false, 6)
	f.Add(uint8(4), "aGVsbG8=", int64(0), math.NaN(), true, 1)
	f.Fuzz(func(t *testing.T, kind uint8, s string, i int64, fl float64, b bool, typ int) {
		var want any
		switch kind % 5 {
		case 0:
			if !utf8.ValidString(s) {
				return // JSON strings carry text; bytes travel as []byte
			}
			want = s
		case 1:
			want = i
		case 2:
			want = fl
		case 3:
			want = b
		case 4:
			want = []byte(s)
		}
		m := &wire.Message{TaskID: "id", TaskName: "task"}
		m.SetLabel("k", want)
		enc, err := m.MarshalJSON()
		if err != nil {
			t.Fatalf("encode label %#v: %v", want, err)
		}
		got, err := wire.DecodeMessage(enc)
		if err != nil {
			t.Fatalf("decode our own encoding of label %#v: %v\n%s", want, err, enc)
		}
		if !sameLabel(want, got.Labels["k"]) {
			t.Fatalf("label %#v came back as %#v\n%s", want, got.Labels["k"], enc)
		}
		if str, ok := m.LabelString("k"); !ok || str == "" && kind%5 != 0 && kind%5 != 4 {
			t.Fatalf("LabelString of %#v = %q, %v", want, str, ok)
		}

		// A Python producer sends s with any declared type: decoding must
		// not fail, and a value that parses must come back parsed.
		if !utf8.ValidString(s) {
			return
		}
		raw := &bytes.Buffer{}
		raw.WriteString(`{"task_id": "id", "task_name": "task", "labels": {"k": `)
		quoted, _ := json.Marshal(s)
		raw.Write(quoted)
		raw.WriteString(`}, "labels_types": {"k": `)
		typJSON, _ := json.Marshal(typ)
		raw.Write(typJSON)
		raw.WriteString(`}, "args": [], "kwargs": {}}`)
		pm, err := wire.DecodeMessage(raw.Bytes())
		if err != nil {
			t.Fatalf("a message with label %q of type %d does not decode: %v", s, typ, err)
		}
		v := pm.Labels["k"]
		switch v.(type) {
		case string, int64, float64, bool, []byte:
		default:
			t.Fatalf("label %q of type %d decoded to %T", s, typ, v)
		}
		if _, isStr := v.(string); !isStr && typ != wire.LabelInt && typ != wire.LabelFloat && typ != wire.LabelBool && typ != wire.LabelBytes {
			t.Fatalf("label %q of type %d (not a parsed type) decoded to %#v, want the string", s, typ, v)
		}
		// Whatever it became, it survives our own round trip.
		again, err := pm.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		pm2, err := wire.DecodeMessage(again)
		if err != nil {
			t.Fatal(err)
		}
		if !sameLabel(v, pm2.Labels["k"]) {
			t.Fatalf("label %#v did not survive re-encoding: %#v", v, pm2.Labels["k"])
		}
	})
}

// FuzzDecodeResult feeds arbitrary bytes to DecodeResult: no panic, errors
// wrap ErrMalformed, a decoded result re-encodes, and encoding is a fixed
// point after the first round (the first may compact return_value).
func FuzzDecodeResult(f *testing.F) {
	f.Add([]byte(okResult))
	f.Add([]byte(errResultPython))
	f.Add([]byte(`{"is_err":true,"error":{"exc_type":"E","exc_message":[],"exc_cause":{"exc_type":"C","exc_message":["x"],"exc_cause":{"exc_type":"D"}}}}`))
	f.Add([]byte(`{"return_value":`))
	f.Add([]byte(`{"is_err":false,"log":"l","return_value":[1, {"a":"\u00e9"}],"execution_time":1e-7,"labels":{"a":"x","n":1.5,"b":true,"z":null},"error":null}`))
	f.Add([]byte(` {"labels":{},"execution_time":-0,"IS_ERR":true} `))
	f.Add([]byte(`{"labels":{"a":1,"a":"x"},"execution_time":1e999}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		requireFastResultMatchesStd(t, data)
		r, err := wire.DecodeResult(data)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("decode error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if r.Error != nil {
			_ = r.Error.Error()
			var we *wire.Error
			if !errors.As(error(r.Error), &we) {
				t.Fatal("errors.As does not find the *wire.Error itself")
			}
			if wire.FromError(r.Error) != r.Error {
				t.Fatal("FromError of a *wire.Error must return it unchanged")
			}
		}
		enc1, err := wire.EncodeResult(r)
		if err != nil {
			t.Fatalf("a decoded result does not encode: %v\ninput: %q", err, data)
		}
		r2, err := wire.DecodeResult(enc1)
		if err != nil {
			t.Fatalf("our own result encoding does not decode: %v\n%q", err, enc1)
		}
		enc2, err := wire.EncodeResult(r2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc1, enc2) {
			t.Fatalf("result encoding is not a fixed point:\nfirst:  %s\nsecond: %s", enc1, enc2)
		}
		if r.IsErr != r2.IsErr || r.ExecutionTime != r2.ExecutionTime && !math.IsNaN(r.ExecutionTime) ||
			(r.Error == nil) != (r2.Error == nil) || (r.Log == nil) != (r2.Log == nil) {
			t.Fatalf("result changed in a round trip:\n%+v\n%+v", r, r2)
		}
	})
}

// requireFastResultMatchesStd checks DecodeResult's fast path against
// encoding/json: when the fast path accepts a body, encoding/json must
// accept it too and decode the same result, nil and empty alike.
func requireFastResultMatchesStd(t *testing.T, data []byte) {
	t.Helper()
	fast, ok := wire.DecodeResultFast(data)
	if !ok {
		return
	}
	std, err := wire.DecodeResultStd(data)
	if err != nil {
		t.Fatalf("the fast path accepted a result encoding/json rejects (%v): %q", err, data)
	}
	if !reflect.DeepEqual(std, fast) {
		t.Fatalf("fast and encoding/json decode differently:\nstd:  %#v\nfast: %#v\ninput: %q", std, fast, data)
	}
}

// normalized returns m as our encoder writes it back: untyped labels that
// are JSON objects, arrays or null become their JSON text.
func normalized(m *wire.Message) *wire.Message {
	c := m.Clone()
	for k, v := range c.Labels {
		switch v.(type) {
		case nil, []any, map[string]any:
			b, _ := json.Marshal(v)
			c.Labels[k] = string(b)
		}
	}
	return c
}

func requireSameMessage(t *testing.T, want, got *wire.Message, input, enc []byte) {
	t.Helper()
	fail := func(what string, a, b any) {
		t.Fatalf("%s changed in a round trip:\nbefore: %#v\nafter:  %#v\ninput:   %q\nencoded: %q", what, a, b, input, enc)
	}
	if want.TaskID != got.TaskID {
		fail("task_id", want.TaskID, got.TaskID)
	}
	if want.TaskName != got.TaskName {
		fail("task_name", want.TaskName, got.TaskName)
	}
	if len(want.Labels) != len(got.Labels) {
		fail("labels", want.Labels, got.Labels)
	}
	for k, v := range want.Labels {
		if !sameLabel(v, got.Labels[k]) {
			fail("label "+k, v, got.Labels[k])
		}
	}
	if len(want.Args) != len(got.Args) {
		fail("args", want.Args, got.Args)
	}
	for i := range want.Args {
		if !sameJSON(want.Args[i], got.Args[i]) {
			fail("arg", string(want.Args[i]), string(got.Args[i]))
		}
	}
	if len(want.Kwargs) != len(got.Kwargs) {
		fail("kwargs", want.Kwargs, got.Kwargs)
	}
	for k, v := range want.Kwargs {
		if !sameJSON(v, got.Kwargs[k]) {
			fail("kwarg "+k, string(v), string(got.Kwargs[k]))
		}
	}
}

// sameLabel compares label values, NaN equal to NaN and nil bytes equal to
// empty bytes.
func sameLabel(a, b any) bool {
	if fa, ok := a.(float64); ok {
		fb, ok := b.(float64)
		return ok && (fa == fb && math.Signbit(fa) == math.Signbit(fb) || math.IsNaN(fa) && math.IsNaN(fb))
	}
	if ba, ok := a.([]byte); ok {
		bb, ok := b.([]byte)
		return ok && bytes.Equal(ba, bb)
	}
	return reflect.DeepEqual(a, b)
}

// sameJSON compares two raw JSON values byte for byte, treating an absent
// value as null (the encoder writes null for it).
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 {
		a = json.RawMessage("null")
	}
	if len(b) == 0 {
		b = json.RawMessage("null")
	}
	return bytes.Equal(a, b)
}

// FuzzEncodeResult holds EncodeResult's fast path to json.Marshal's bytes
// for results built from arbitrary return values, times and labels.
func FuzzEncodeResult(f *testing.F) {
	f.Add(false, []byte(`{"a":[1,2.5,"x"]}`), 0.000123, "queue_name", "default", int64(30), 1.5, true)
	f.Add(true, []byte(` 1 `), 1e-7, "k<", "v&", int64(-1), 1e21, false)
	f.Add(false, []byte(``), 0.0, "", "caf\u00e9", int64(0), math.Copysign(0, -1), true)
	f.Add(false, []byte("\"\u2028\""), 3.0, "a", "\"", int64(1), math.NaN(), false)
	f.Fuzz(func(t *testing.T, isErr bool, ret []byte, exec float64, key, val string, i int64, fl float64, b bool) {
		r := &wire.Result{IsErr: isErr, ReturnValue: ret, ExecutionTime: exec,
			Labels: map[string]any{key: val, key + "_i": i, key + "_f": fl, key + "_b": b}}
		if len(key)%2 == 1 {
			r.Labels = nil
		}
		got, gotErr := wire.EncodeResult(r)
		want, wantErr := json.Marshal(r)
		if (gotErr != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("EncodeResult = %s (%v)\njson.Marshal = %s (%v)", got, gotErr, want, wantErr)
		}
	})
}
