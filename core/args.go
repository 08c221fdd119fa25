package core

import (
	"encoding/json"
	"reflect"
	"strconv"

	"github.com/taskiq-go/taskiq/internal/plainjson"
)

// Arguments and return values of plain Go types (the predeclared integer,
// bool and string types) are converted to and from JSON directly, the way
// encoding/json does it but without its reflection; every other type, and
// every value the direct path is unsure of, goes through encoding/json,
// which also words the errors. core's tests hold the two paths to the same
// results.

// decodeArg decodes one JSON argument into a value of type p.
func decodeArg(raw json.RawMessage, p reflect.Type) (reflect.Value, error) {
	if p.PkgPath() == "" && p.Name() != "" { // predeclared: no methods of its own
		v := reflect.New(p).Elem()
		if setPlain(v, raw) {
			return v, nil
		}
	}
	v := reflect.New(p)
	err := json.Unmarshal(raw, v.Interface())
	return v.Elem(), err
}

// setPlain sets v from raw when raw is a JSON integer, bool or escape-free
// string and v's kind takes it as encoding/json would.
func setPlain(v reflect.Value, raw []byte) bool {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !isJSONInt(raw) {
			return false
		}
		i, err := strconv.ParseInt(string(raw), 10, v.Type().Bits())
		if err != nil {
			return false
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !isJSONInt(raw) || raw[0] == '-' {
			return false
		}
		u, err := strconv.ParseUint(string(raw), 10, v.Type().Bits())
		if err != nil {
			return false
		}
		v.SetUint(u)
	case reflect.Bool:
		switch string(raw) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			return false
		}
	case reflect.String:
		s, ok := plainjson.Text(raw)
		if !ok {
			return false
		}
		v.SetString(s)
	default:
		return false
	}
	return true
}

// isJSONInt reports whether raw is -?(0|[1-9][0-9]*).
func isJSONInt(raw []byte) bool {
	digits := raw
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 1 && digits[0] == '0' {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// encodeValue marshals a value as json.Marshal does.
func encodeValue(x any) ([]byte, error) {
	switch v := x.(type) {
	case int:
		return strconv.AppendInt(nil, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(nil, v, 10), nil
	case int32:
		return strconv.AppendInt(nil, int64(v), 10), nil
	case uint64:
		return strconv.AppendUint(nil, v, 10), nil
	case bool:
		return strconv.AppendBool(nil, v), nil
	case string:
		if b, ok := plainjson.AppendString(make([]byte, 0, len(v)+2), v); ok {
			return b, nil
		}
	}
	return json.Marshal(x)
}
