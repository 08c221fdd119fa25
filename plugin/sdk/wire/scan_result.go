package wire

import (
	"bytes"
	"strconv"
)

// decodeResultFast is the fast path of DecodeResult, for the layout
// EncodeResult writes for a common result: the six known keys (each at most
// once, in any order), a null or plain-string log, a null error, labels
// whose values are plain strings, numbers, booleans or null. Anything else
// (an error object, an escaped string, a nested label, an unknown or
// differently cased key) returns false and takes encoding/json. The fuzz
// test checks that whenever the fast path accepts a body, it decodes it
// exactly as encoding/json does.
func decodeResultFast(body []byte) (*Result, bool) {
	s := scanner{b: body}
	var (
		r    Result
		seen uint8
	)
	ok := s.members('{', '}', func() bool {
		key, ok := s.key()
		if !ok {
			return false
		}
		var bit uint8
		switch string(key) {
		case "is_err":
			bit = 1
			switch {
			case s.peek() == 't' && s.literal("true"):
				r.IsErr = true
			case s.peek() == 'f' && s.literal("false"):
			default:
				return false
			}
		case "log":
			bit = 2
			if !s.null() {
				var text string
				if text, ok = s.plainString(); !ok {
					return false
				}
				r.Log = &text
			}
		case "return_value":
			bit = 4
			var v []byte
			if v, ok = s.value(0); !ok {
				return false
			}
			r.ReturnValue = bytes.Clone(v) // encoding/json copies a RawMessage
		case "execution_time":
			bit = 8
			if r.ExecutionTime, ok = s.float(); !ok {
				return false
			}
		case "labels":
			bit = 16
			if r.Labels, ok = s.resultLabels(); !ok {
				return false
			}
		case "error":
			bit = 32
			if !s.null() {
				return false
			}
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
	if !ok {
		return nil, false
	}
	s.space()
	if s.i != len(s.b) {
		return nil, false
	}
	return &r, true
}

// float reads a JSON number as encoding/json reads one into a float64.
func (s *scanner) float() (float64, bool) {
	s.space()
	start := s.i
	if !s.skipNumber() {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(s.b[start:s.i]), 64)
	return f, err == nil
}

// resultLabels reads a result's labels as encoding/json decodes them into
// map[string]any: strings, float64 numbers, booleans and nil; null is a
// nil map, {} an empty one.
func (s *scanner) resultLabels() (map[string]any, bool) {
	if s.null() {
		return nil, true
	}
	labels := make(map[string]any)
	ok := s.members('{', '}', func() bool {
		k, ok := s.key()
		if !ok {
			return false
		}
		v, ok := s.scalar()
		labels[string(k)] = v
		return ok
	})
	return labels, ok
}

// scalar reads a plain string, a boolean, null or a number (as float64), as
// encoding/json decodes them into an any; false for anything else.
func (s *scanner) scalar() (any, bool) {
	switch s.peek() {
	case '"':
		return s.plainString()
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	case 'n':
		return nil, s.literal("null")
	case '{', '[':
		return nil, false
	}
	return s.float()
}
