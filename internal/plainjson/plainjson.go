// Package plainjson converts the plainest JSON strings (no escapes needed,
// none present) without encoding/json, for the codecs on the path of every
// task. Callers fall back to encoding/json whenever these report false.
package plainjson

import "unicode/utf8"

// AppendString appends s quoted, byte for byte as json.Marshal writes it,
// when s is printable ASCII without a character json.Marshal escapes
// ('"', '\\', '<', '>', '&'). Otherwise it returns dst and false.
func AppendString(dst []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return dst, false
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"'), true
}

// Text returns the text of a quoted JSON string that has no escapes or
// control characters and is valid UTF-8: the strings whose text is their
// bytes, which json.Unmarshal would decode to the same.
func Text(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	text := raw[1 : len(raw)-1]
	for _, c := range text {
		if c < 0x20 || c == '"' || c == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(text) {
		return "", false
	}
	return string(text), true
}
