package core_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/taskiq-go/taskiq/core"
)

type namedInt int

func (n *namedInt) UnmarshalJSON(b []byte) error { *n = 42; return nil }

// FuzzArgCodec holds the direct argument decoding and value encoding to
// encoding/json's results: same value, and an error exactly when
// encoding/json fails.
func FuzzArgCodec(f *testing.F) {
	for _, s := range []string{`12`, `-0`, `01`, `1.0`, `1e3`, `true`, `null`, `"x"`, `"a\"b"`, `"\u00e9"`,
		"\"caf\xc3\xa9\"", "\"\xff\"", `9223372036854775808`, `-129`, `"<&>"`, ` 1`, `""`} {
		f.Add([]byte(s), int64(len(s)), s)
	}
	types := []reflect.Type{
		reflect.TypeFor[int](), reflect.TypeFor[int8](), reflect.TypeFor[int64](), reflect.TypeFor[uint](),
		reflect.TypeFor[uint8](), reflect.TypeFor[uint32](), reflect.TypeFor[bool](), reflect.TypeFor[string](),
		reflect.TypeFor[float64](), reflect.TypeFor[namedInt](), reflect.TypeFor[[]int](),
	}
	f.Fuzz(func(t *testing.T, raw []byte, i int64, s string) {
		for _, p := range types {
			got, err := core.DecodeArg(raw, p)
			want := reflect.New(p)
			wantErr := json.Unmarshal(raw, want.Interface())
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("%s from %q: error %v, encoding/json %v", p, raw, err, wantErr)
			}
			if err == nil && !reflect.DeepEqual(got.Interface(), want.Elem().Interface()) {
				t.Fatalf("%s from %q: %#v, encoding/json %#v", p, raw, got.Interface(), want.Elem().Interface())
			}
		}
		for _, x := range []any{int(i), i, int32(i), uint64(i), i%2 == 0, s, float64(i), namedInt(i)} {
			got, err := core.EncodeValue(x)
			want, wantErr := json.Marshal(x)
			if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
				t.Fatalf("%#v: %s (%v), json.Marshal %s (%v)", x, got, err, want, wantErr)
			}
		}
	})
}
