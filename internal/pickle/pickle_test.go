package pickle_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/pickle"
)

// fixture is one value stored by taskiq-redis 1.2.2 (testdata/README.md).
type fixture struct {
	Key    string          `json:"key"`
	Pickle string          `json:"pickle_b64"`
	JSON   json.RawMessage `json:"as_json"`
}

func loadFixtures(t testing.TB) map[string]fixture {
	t.Helper()
	raw, err := os.ReadFile("testdata/pickle_results.json")
	require.NoError(t, err)
	var fx map[string]fixture
	require.NoError(t, json.Unmarshal(raw, &fx))
	require.NotEmpty(t, fx)
	return fx
}

func (f fixture) bytes(t testing.TB) []byte {
	b, err := base64.StdEncoding.DecodeString(f.Pickle)
	require.NoError(t, err)
	return b
}

// jsonValue decodes JSON keeping ints apart from floats, as the pickles do.
func jsonValue(t testing.TB, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	return normalize(v)
}

func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			f, _ := x.Float64()
			return f
		}
		if i, err := x.Int64(); err == nil {
			return i
		}
		b, _ := new(big.Int).SetString(string(x), 10)
		return b
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}

func names(fx map[string]fixture) []string {
	var out []string
	for n := range fx {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func TestDecodeFixtures(t *testing.T) {
	fx := loadFixtures(t)
	for _, name := range names(fx) {
		f := fx[name]
		t.Run(name, func(t *testing.T) {
			got, err := pickle.Decode(f.bytes(t))
			require.NoError(t, err)
			require.Equal(t, jsonValue(t, f.JSON), got)

			js, err := pickle.ToJSON(f.bytes(t))
			require.NoError(t, err)
			require.JSONEq(t, string(f.JSON), string(js))
			require.Equal(t, jsonValue(t, f.JSON), jsonValue(t, js), "ints and floats keep their kind")
		})
	}
}

// Python's bytes for the JSON each fixture decodes to, key order kept.
func TestFromJSONMatchesPython(t *testing.T) {
	fx := loadFixtures(t)
	for _, name := range names(fx) {
		f := fx[name]
		t.Run(name, func(t *testing.T) {
			got, err := pickle.FromJSON(f.JSON)
			require.NoError(t, err)
			require.Equal(t, f.bytes(t), got)
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	big70, _ := new(big.Int).SetString("1180591620717411303424", 10)
	negBig, _ := new(big.Int).SetString("-1180591620717411303424", 10)
	long := strings.Repeat("x", 70000)
	many := make([]any, 2500)
	for i := range many {
		many[i] = int64(i * 37)
	}
	wide := map[string]any{}
	for i := 0; i < 2000; i++ {
		wide[strings.Repeat("k", i%7)+string(rune('a'+i%26))+big.NewInt(int64(i)).String()] = int64(-i)
	}
	v := map[string]any{
		"a": int64(1), "neg": int64(-7), "i16": int64(65535), "i32": int64(-2147483648),
		"i64": int64(1) << 40, "min": int64(-1) << 63, "big": big70, "negbig": negBig,
		"f": 2.5, "z": 0.0, "s": "héllo ✓", "t": true, "n": nil, "l": []any{long, long, "a", []any{}},
		"many": many, "wide": wide, "empty": map[string]any{},
	}
	data, err := pickle.Encode(v)
	require.NoError(t, err)
	got, err := pickle.Decode(data)
	require.NoError(t, err)
	require.Equal(t, v, got)
}

func TestEncodeRefusesOtherTypes(t *testing.T) {
	_, err := pickle.Encode(map[string]any{"x": struct{}{}})
	require.ErrorIs(t, err, pickle.ErrUnsupported)
}

func TestDecodeRefusesObjects(t *testing.T) {
	cases := map[string]struct {
		data []byte
		want error
		msg  string
	}{
		// pickle.dumps(os.system) style: GLOBAL 'os system'
		"global":       {[]byte("\x80\x04cos\nsystem\n\x94."), pickle.ErrUnsupported, "GLOBAL"},
		"stack_global": {[]byte("\x80\x04\x8c\x02os\x8c\x06system\x93."), pickle.ErrUnsupported, "STACK_GLOBAL"},
		"reduce":       {[]byte("\x80\x04N)R."), pickle.ErrUnsupported, "REDUCE"},
		"build":        {[]byte("\x80\x04}}b."), pickle.ErrUnsupported, "BUILD"},
		"bytes":        {[]byte("\x80\x04C\x01a."), pickle.ErrUnsupported, "SHORT_BINBYTES"},
		"set":          {[]byte("\x80\x04\x8f."), pickle.ErrUnsupported, "EMPTY_SET"},
		"int_key":      {[]byte("\x80\x04}K\x01K\x02s."), pickle.ErrUnsupported, "only str keys"},
		"cycle":        {[]byte("\x80\x04]\x94h\x00a."), pickle.ErrUnsupported, "contains itself"},
		"truncated":    {[]byte("\x80\x04\x8c\x05ab"), pickle.ErrMalformed, "truncated"},
		"no_stop":      {[]byte("\x80\x04N"), pickle.ErrMalformed, "no STOP"},
		"json":         {[]byte(`{"is_err": false}`), pickle.ErrMalformed, "unknown opcode 0x7b"},
		"bad_utf8":     {[]byte("\x80\x04\x8c\x01\xff."), pickle.ErrMalformed, "UTF-8"},
		"memo_miss":    {[]byte("\x80\x04h\x05."), pickle.ErrMalformed, "memo entry 5"},
		"underflow":    {[]byte("\x80\x04(s."), pickle.ErrMalformed, "underflow"},
		"trailing":     {[]byte("\x80\x04N.N"), pickle.ErrMalformed, "after STOP"},
		"proto9":       {[]byte("\x80\x09N."), pickle.ErrUnsupported, "protocol 9"},
		"append_dict":  {[]byte("\x80\x04}Na."), pickle.ErrUnsupported, "not a list"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := pickle.Decode(c.data)
			require.ErrorIs(t, err, c.want)
			require.Contains(t, err.Error(), c.msg)
			_, err = pickle.ToJSON(c.data)
			require.Error(t, err)
		})
	}
}

// Shared references cannot blow a small pickle up into a huge value.
func TestDecodeBoundsExpansion(t *testing.T) {
	// Each list holds two references to the one before: 2^40 leaves from
	// a pickle of a few hundred bytes.
	var b bytes.Buffer
	b.WriteString("\x80\x04]\x940")
	for i := 0; i < 40; i++ {
		b.WriteString("]\x94(")
		b.Write([]byte{'j', byte(i), 0, 0, 0, 'j', byte(i), 0, 0, 0})
		b.WriteString("e0")
	}
	b.Write([]byte{'j', 40, 0, 0, 0, '.'})
	_, err := pickle.Decode(b.Bytes())
	require.ErrorIs(t, err, pickle.ErrMalformed)
	require.Contains(t, err.Error(), "expand")
	_, err = pickle.ToJSON(b.Bytes())
	require.ErrorIs(t, err, pickle.ErrMalformed)
}

func TestDecodeTuplesAsLists(t *testing.T) {
	got, err := pickle.Decode([]byte("\x80\x04K\x01K\x02\x86\x94)(K\x03t\x87."))
	require.NoError(t, err)
	require.Equal(t, []any{[]any{int64(1), int64(2)}, []any{}, []any{int64(3)}}, got)
}

// FuzzDecode: decoding never panics, and whatever decodes re-encodes to a
// pickle that decodes to the same value (JSON forms compared).
func FuzzDecode(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		f.Add(fx.bytes(f))
	}
	f.Add([]byte("\x80\x04]\x94h\x00a."))
	f.Add([]byte("\x80\x04K\x01K\x02\x86\x94."))
	f.Fuzz(func(t *testing.T, data []byte) {
		js, err := pickle.ToJSON(data)
		v, derr := pickle.Decode(data)
		if err != nil {
			return
		}
		if derr != nil {
			t.Fatalf("ToJSON ok but Decode failed: %v", derr)
		}
		again, err := pickle.FromJSON(js)
		if err != nil {
			t.Fatalf("FromJSON(%s): %v", js, err)
		}
		js2, err := pickle.ToJSON(again)
		if err != nil {
			t.Fatalf("ToJSON of re-encoded: %v", err)
		}
		if !bytes.Equal(js, js2) {
			t.Fatalf("round trip changed %s into %s", js, js2)
		}
		if _, err := pickle.Encode(v); err != nil {
			t.Fatalf("Encode(Decode(x)): %v", err)
		}
	})
}
