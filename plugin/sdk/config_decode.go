package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

var durationType = reflect.TypeFor[time.Duration]()

// Decode fills v, a pointer to a struct, from the config block.
//
// Each exported field takes the attribute its json tag names (or, untagged,
// the attribute of its own name, matched without regard to case, as
// encoding/json does); the fields of embedded structs count as the outer
// struct's, and `json:"-"` skips a field. An absent or null attribute leaves
// its field as it was, so a pointer field tells "absent" from a zero value.
// The field types decoded directly:
//
//   - time.Duration, from a duration string ("1m30s");
//   - int, int8 ... int64 and uint, uint8 ... uint64, from a whole number
//     that fits the type;
//   - float32 and float64, bool and string;
//   - []string and map[string]string;
//   - a pointer to any of these.
//
// A field of any other type is decoded by encoding/json. Every problem is an
// AttrError on its attribute (joined), so the host points at the
// attribute's line in taskiq.hcl; a plugin need not re-parse anything.
//
// v of another kind than a pointer to a struct (a map, say) is decoded by
// encoding/json as a whole.
func (c Config) Decode(v any) error {
	raw := c.Raw
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("decode config: %w", err)
		}
		return nil
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(raw, &values); err != nil {
		return fmt.Errorf("decode config: the config block is not a JSON object: %w", err)
	}
	var errs []error
	decodeStruct(rv.Elem(), values, &errs)
	return errors.Join(errs...)
}

// Decode is cfg.Decode after Prepare: absent attributes take the schema's
// defaults and every value is checked against its type and bounds, as the
// SDK does before Factory.New. A plugin's decoding through it gets the same
// values whoever built cfg: the host, sdktest, a test or a program that
// uses the plugin's package directly.
//
// On errors, v still gets every valid value, and the default in place of
// each invalid one, so the plugin can go on checking the rest and report
// every problem of the block at once.
func (s Schema) Decode(cfg Config, v any) error {
	raw, perr := s.prepare(cfg.Raw, true)
	if raw == nil {
		return perr // not a JSON object
	}
	cfg.Raw = raw
	return errors.Join(perr, cfg.Decode(v))
}

// decodeStruct fills the fields of sv (a settable struct) from values.
func decodeStruct(sv reflect.Value, values map[string]json.RawMessage, errs *[]error) {
	st := sv.Type()
	for i := range st.NumField() {
		f := st.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			fv := sv.Field(i)
			if f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct && f.IsExported() {
				if fv.IsNil() {
					fv.Set(reflect.New(f.Type.Elem()))
				}
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct {
				decodeStruct(fv, values, errs)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		key, raw, ok := lookupValue(values, name)
		if !ok {
			continue
		}
		if err := decodeValue(sv.Field(i), raw); err != nil {
			*errs = append(*errs, AttrError(key, "%v", err))
		}
	}
}

// lookupValue finds the attribute name in values: the exact key first, then
// one equal without regard to case. A null value counts as absent.
func lookupValue(values map[string]json.RawMessage, name string) (string, json.RawMessage, bool) {
	key, raw, ok := name, values[name], false
	if raw != nil {
		ok = true
	} else {
		for k, v := range values {
			if strings.EqualFold(k, name) {
				key, raw, ok = k, v, true
				break
			}
		}
	}
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return key, nil, false
	}
	return key, raw, true
}

// decodeValue decodes one attribute's JSON value into fv.
func decodeValue(fv reflect.Value, raw json.RawMessage) error {
	if fv.Kind() == reflect.Pointer {
		nv := reflect.New(fv.Type().Elem())
		if err := decodeValue(nv.Elem(), raw); err != nil {
			return err
		}
		fv.Set(nv)
		return nil
	}
	if fv.Type() == durationType {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("must be a duration string such as \"30s\" or \"1m30s\", got %s", raw)
		}
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := wholeNumber(raw)
		if err != nil {
			return err
		}
		i, err := strconv.ParseInt(n, 10, 64)
		if err != nil || fv.OverflowInt(i) {
			return fmt.Errorf("%s is out of range for %s", n, fv.Type())
		}
		fv.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := wholeNumber(raw)
		if err != nil {
			return err
		}
		if strings.HasPrefix(n, "-") {
			return fmt.Errorf("must not be negative, got %s", n)
		}
		u, err := strconv.ParseUint(n, 10, 64)
		if err != nil || fv.OverflowUint(u) {
			return fmt.Errorf("%s is out of range for %s", n, fv.Type())
		}
		fv.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil {
			return fmt.Errorf("must be a number, got %s", raw)
		}
		if fv.OverflowFloat(f) {
			return fmt.Errorf("%s is out of range for %s", formatNumber(f), fv.Type())
		}
		fv.SetFloat(f)
	case reflect.Bool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return fmt.Errorf("must be true or false, got %s", raw)
		}
		fv.SetBool(b)
	case reflect.String:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("must be a string, got %s", raw)
		}
		fv.SetString(s)
	default:
		if err := json.Unmarshal(raw, fv.Addr().Interface()); err != nil {
			switch t := fv.Type(); {
			case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
				return fmt.Errorf("must be a list of strings, got %s", raw)
			case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
				return fmt.Errorf("must be a map of strings, got %s", raw)
			}
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return fmt.Errorf("must be a value of Go type %s, got %s", fv.Type(), raw)
			}
			return err
		}
	}
	return nil
}

// wholeNumber returns raw, a JSON number, as a decimal integer ("1e3" is
// "1000"), or an error saying it is not a whole number.
func wholeNumber(raw json.RawMessage) (string, error) {
	var n json.Number
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '"' {
		return "", fmt.Errorf("must be a whole number, got %s", raw)
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("must be a whole number, got %s", raw)
	}
	s := n.String()
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return s, nil
	}
	if _, err := strconv.ParseUint(s, 10, 64); err == nil {
		return s, nil
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.IsInf(f, 0) {
		return "", fmt.Errorf("must be a whole number, got %s", s)
	}
	return strconv.FormatFloat(f, 'f', -1, 64), nil
}
