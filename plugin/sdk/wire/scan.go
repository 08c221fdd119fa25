package wire

import (
	"encoding/json"
	"unicode/utf8"
)

// This file is the fast path of DecodeMessage: a scanner for the layout that
// taskiq and this package write (six known lowercase keys, integer label
// types), with no reflection and no copy of the body. Anything it is not sure about (an unknown or escaped key, a duplicate
// field, an escape or invalid UTF-8 in task_id or task_name, nesting deeper
// than maxScanDepth) makes it give up, and DecodeMessage decodes the body
// with encoding/json instead. The fuzz test checks that whenever the fast
// path accepts a body, it decodes it exactly as encoding/json does.

// maxScanDepth bounds the nesting the fast path follows inside args and
// kwargs; deeper values take the encoding/json path.
const maxScanDepth = 64

type scanner struct {
	b []byte
	i int
}

// decodeMessageFast returns the message and true, or false when the body
// must go through encoding/json.
func decodeMessageFast(body []byte) (*Message, bool) {
	// Args, kwargs and raw labels are slices of body (DecodeMessage's
	// contract); strings are copies.
	s := scanner{b: body}
	var (
		m      Message
		labBuf [8]rawLabel // labels and types of a typical message stay on the stack
		typBuf [8]rawLabel
		labels []rawLabel
		types  []rawLabel
		seen   uint8
	)
	ok := s.members('{', '}', func() bool {
		key, ok := s.key()
		if !ok {
			return false
		}
		var bit uint8
		switch string(key) {
		case "task_id":
			bit = 1
			m.TaskID, ok = s.plainString()
		case "task_name":
			bit = 2
			m.TaskName, ok = s.plainString()
		case "labels":
			bit = 4
			labels, ok = s.labels(labBuf[:0])
		case "labels_types":
			bit = 8
			types, ok = s.labelTypes(typBuf[:0])
		case "args":
			bit = 16
			m.Args, ok = s.args()
		case "kwargs":
			bit = 32
			m.Kwargs, ok = s.kwargs()
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
	if !ok {
		return nil, false
	}
	s.space()
	if s.i != len(s.b) || m.TaskID == "" || m.TaskName == "" {
		return nil, false
	}
	if len(labels) > 0 {
		m.Labels = make(map[string]any, len(labels))
		for _, l := range labels {
			m.Labels[labelKey(l.key)] = decodeLabel(l.value, labelType(types, l.key))
		}
	}
	return &m, true
}

// knownLabelKeys are label keys most messages carry, which labelKey
// returns without making a string: the host's and Python taskiq's own,
// and the trace context and kick time of the telemetry middlewares.
var knownLabelKeys = [...]string{LabelTimeout, LabelAckType, LabelRetryOnError, LabelMaxRetries, LabelRetries,
	LabelDelay, LabelPriority, LabelQueueName, LabelSchedule, LabelScheduleID, LabelRequeue,
	LabelTraceparent, LabelTracestate, LabelBaggage, LabelQueueTime, LabelEnqueueTimestamp}

// labelKey is key as a string, a known key's constant when it is one.
func labelKey(key []byte) string {
	for _, k := range knownLabelKeys {
		if string(key) == k {
			return k
		}
	}
	return string(key)
}

// rawLabel is a label's key with its raw value, or with its type in typ.
type rawLabel struct {
	key   []byte
	value json.RawMessage
	typ   int
}

// labelType finds key's type; as in a map, the last entry wins.
func labelType(types []rawLabel, key []byte) int {
	for i := len(types) - 1; i >= 0; i-- {
		if string(types[i].key) == string(key) {
			return types[i].typ
		}
	}
	return 0
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte consumes c after optional whitespace.
func (s *scanner) byte(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) peek() byte {
	s.space()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// null consumes a JSON null.
func (s *scanner) null() bool {
	if s.peek() == 'n' && len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// plainString reads a string without escapes or control characters whose
// bytes are valid UTF-8: the only strings whose text is their bytes.
func (s *scanner) plainString() (string, bool) {
	b, ok := s.plainBytes()
	return string(b), ok
}

// plainBytes is plainString without the copy.
func (s *scanner) plainBytes() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start := s.i
	ascii := true
	for j := s.i + 1; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			text := s.b[start+1 : j]
			if !ascii && !utf8.Valid(text) {
				return nil, false
			}
			return text, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// members reads a JSON object or array: the open byte, members separated by
// commas, the close byte. member reads one member (key, colon and value of
// an object member).
func (s *scanner) members(open, close byte, member func() bool) bool {
	if !s.byte(open) {
		return false
	}
	if s.byte(close) {
		return true
	}
	for member() {
		if !s.byte(',') {
			return s.byte(close)
		}
	}
	return false
}

// key reads an object member's plain key and its colon.
func (s *scanner) key() ([]byte, bool) {
	k, ok := s.plainBytes()
	return k, ok && s.byte(':')
}

// labels reads the labels object into out as raw values, which decodeLabel converts
// as the encoding/json path does; null means none.
func (s *scanner) labels(out []rawLabel) ([]rawLabel, bool) {
	if s.null() {
		return nil, true
	}
	ok := s.members('{', '}', func() bool {
		k, ok := s.key()
		if !ok {
			return false
		}
		v, ok := s.value(0)
		out = append(out, rawLabel{key: k, value: v})
		return ok
	})
	return out, ok
}

// labelTypes reads labels_types into out: small non-negative integers only.
func (s *scanner) labelTypes(out []rawLabel) ([]rawLabel, bool) {
	ok := s.members('{', '}', func() bool {
		k, ok := s.key()
		if !ok {
			return false
		}
		s.space()
		n, digits := 0, 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' && digits < 9 {
			n = n*10 + int(s.b[s.i]-'0')
			s.i++
			digits++
		}
		if digits == 0 || digits > 1 && s.b[s.i-digits] == '0' {
			return false
		}
		if s.i < len(s.b) {
			switch s.b[s.i] {
			case '.', 'e', 'E', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
				return false
			}
		}
		out = append(out, rawLabel{key: k, typ: n})
		return true
	})
	return out, ok
}

// args reads the args array as raw values; null means none.
func (s *scanner) args() ([]json.RawMessage, bool) {
	if s.null() {
		return nil, true
	}
	out := make([]json.RawMessage, 0, 4)
	ok := s.members('[', ']', func() bool {
		v, ok := s.value(0)
		out = append(out, v)
		return ok
	})
	return out, ok
}

// kwargs reads the kwargs object as raw values; null means none.
func (s *scanner) kwargs() (map[string]json.RawMessage, bool) {
	if s.null() {
		return nil, true
	}
	out := make(map[string]json.RawMessage)
	ok := s.members('{', '}', func() bool {
		k, ok := s.key()
		if !ok {
			return false
		}
		v, ok := s.value(0)
		out[string(k)] = v
		return ok
	})
	return out, ok
}

// value reads one JSON value of any kind and returns its bytes (with
// capacity capped, so appending to it cannot overwrite what follows).
func (s *scanner) value(depth int) (json.RawMessage, bool) {
	s.space()
	start := s.i
	if !s.skip(depth) {
		return nil, false
	}
	return json.RawMessage(s.b[start:s.i:s.i]), true
}

// skip consumes one JSON value, validating it as encoding/json's scanner
// would (strings may hold any bytes, as encoding/json keeps raw values
// verbatim).
func (s *scanner) skip(depth int) bool {
	if depth > maxScanDepth {
		return false
	}
	switch s.peek() {
	case '"':
		return s.skipString()
	case '{':
		return s.members('{', '}', func() bool {
			return s.peek() == '"' && s.skipString() && s.byte(':') && s.skip(depth+1)
		})
	case '[':
		return s.members('[', ']', func() bool { return s.skip(depth + 1) })
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		return s.skipNumber()
	}
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

func (s *scanner) skipString() bool {
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			j++
			if j >= len(s.b) {
				return false
			}
			switch s.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s.b) {
					return false
				}
				for _, h := range s.b[j+1 : j+5] {
					if !isHex(h) {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skipNumber consumes -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) skipNumber() bool {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digitsEnd(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		if i = digitsEnd(b, i+1); b[i-1] == '.' {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		if i = digitsEnd(b, i); i == start {
			return false
		}
	}
	s.i = i
	return true
}

// digitsEnd returns the index after the run of digits starting at i.
func digitsEnd(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// validJSON reports whether r is exactly one valid JSON value, as
// json.Valid does, without its per-byte state machine for the common case.
func validJSON(r []byte) bool {
	s := scanner{b: r}
	if s.skip(0) {
		s.space()
		return s.i == len(r)
	}
	// Too deep for the scanner, or invalid: encoding/json decides.
	return json.Valid(r)
}
