package pickle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/taskiq-go/taskiq/internal/plainjson"
)

// ToJSON reads a pickle of plain data and writes it as compact JSON, dict
// keys in pickle order. Floats keep a decimal point or an exponent (3.0 is
// written "3.0"), so they stay floats when read back; NaN and infinities,
// which JSON has no form for, are refused.
func ToJSON(data []byte) ([]byte, error) {
	v, err := parse(data)
	if err != nil {
		return nil, err
	}
	return newWalker(len(data)).appendJSON(make([]byte, 0, len(data)+16), v, 0)
}

func (w *walker) appendJSON(dst []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), w.enter(nil, depth, 1)
	case bool:
		return strconv.AppendBool(dst, x), w.enter(nil, depth, 1)
	case int64:
		return strconv.AppendInt(dst, x, 10), w.enter(nil, depth, 1)
	case *big.Int:
		return x.Append(dst, 10), w.enter(nil, depth, 1)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%w: float %v has no JSON form", ErrUnsupported, x)
		}
		return appendFloat(dst, x), w.enter(nil, depth, 1)
	case string:
		if err := w.enter(nil, depth, 1+len(x)); err != nil {
			return nil, err
		}
		return appendString(dst, x), nil
	case *list:
		return w.appendItems(dst, x, x.items, depth)
	case tuple:
		return w.appendItems(dst, nil, x, depth)
	case *dict:
		done, err := w.open(x, depth)
		if err != nil {
			return nil, err
		}
		defer done()
		dst = append(dst, '{')
		for i, k := range x.keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			if err := w.enter(nil, depth, len(k)); err != nil {
				return nil, err
			}
			dst = append(appendString(dst, k), ':')
			if dst, err = w.appendJSON(dst, x.vals[i], depth+1); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	}
	return nil, fmt.Errorf("%w: value of type %T", ErrUnsupported, v)
}

func (w *walker) appendItems(dst []byte, l *list, items []any, depth int) ([]byte, error) {
	done, err := w.open(self(l), depth)
	if err != nil {
		return nil, err
	}
	defer done()
	dst = append(dst, '[')
	for i, it := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = w.appendJSON(dst, it, depth+1); err != nil {
			return nil, err
		}
	}
	return append(dst, ']'), nil
}

// appendFloat writes f as Python's repr does: positional between 1e-4 and
// 1e16, with ".0" when it has no fraction; an exponent otherwise.
func appendFloat(dst []byte, f float64) []byte {
	if a := math.Abs(f); a == 0 || (a >= 1e-4 && a < 1e16) {
		start := len(dst)
		dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
		if !bytes.ContainsRune(dst[start:], '.') {
			dst = append(dst, ".0"...)
		}
		return dst
	}
	return strconv.AppendFloat(dst, f, 'e', -1, 64)
}

func appendString(dst []byte, s string) []byte {
	if out, ok := plainjson.AppendString(dst, s); ok {
		return out
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a valid UTF-8 string always encodes
	return append(dst, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
}

// FromJSON writes the pickle (protocol 4, as CPython writes it) of a JSON
// value, keeping the order of object keys. A number with a decimal point or
// an exponent becomes a float, any other number an int (of any size).
func FromJSON(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readJSON(dec, 0)
	if err != nil {
		return nil, fmt.Errorf("pickle: JSON input: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("pickle: JSON input: data after the value")
	}
	return encodeTree(v)
}

func readJSON(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			d := &dict{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := readJSON(dec, depth+1)
				if err != nil {
					return nil, err
				}
				d.set(kt.(string), v)
			}
			_, err := dec.Token()
			return d, err
		case '[':
			l := &list{}
			for dec.More() {
				v, err := readJSON(dec, depth+1)
				if err != nil {
					return nil, err
				}
				l.items = append(l.items, v)
			}
			_, err := dec.Token()
			return l, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		return parseNumber(string(t))
	}
	return tok, nil // string, bool, nil
}

func parseNumber(s string) (any, error) {
	if strings.ContainsAny(s, ".eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", s, err)
		}
		return f, nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("number %s is not an int", s)
	}
	return b, nil
}
