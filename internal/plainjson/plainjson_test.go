package plainjson_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/taskiq-go/taskiq/internal/plainjson"
)

// FuzzPlainJSON holds both helpers to encoding/json: what AppendString
// writes is json.Marshal's output, what Text returns is json.Unmarshal's.
func FuzzPlainJSON(f *testing.F) {
	for _, s := range []string{"", "abc", "a\"b", "<tag>", "caf\u00e9", "\x01", "a\\b", "\xff", `"abc"`, `"a\u0041"`, "\"caf\u00e9\"", "\"\xff\"", "\"\t\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, ok := plainjson.AppendString([]byte("x"), s); ok {
			want, _ := json.Marshal(s)
			if !bytes.Equal(got, append([]byte("x"), want...)) {
				t.Fatalf("AppendString(%q) = %s, json.Marshal %s", s, got, want)
			}
		}
		raw := []byte(s)
		if got, ok := plainjson.Text(raw); ok {
			var want string
			if err := json.Unmarshal(raw, &want); err != nil || got != want {
				t.Fatalf("Text(%s) = %q, json.Unmarshal %q (%v)", raw, got, want, err)
			}
		}
	})
}
