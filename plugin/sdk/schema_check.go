package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Num returns a pointer to v, for Attribute.Min and Attribute.Max.
func Num(v float64) *float64 { return &v }

// Seconds returns a pointer to d in seconds, for the Min and Max of a
// duration attribute.
func Seconds(d time.Duration) *float64 { return Num(d.Seconds()) }

// Prepare checks a config block, a JSON object, against the schema and
// returns it with the default of every absent attribute filled in, in
// schema order. It is the one path every config takes: the host runs it on
// the block it decoded from taskiq.hcl, and the SDK runs it again in the
// plugin process before Factory.Check and Factory.New, so a plugin launched
// by any host (sdktest.Launch included) sees the same values.
//
// Each problem is an AttrError on its attribute (joined): a missing
// required attribute, a value of the wrong
// type, a duration time.ParseDuration rejects or that is negative, a string
// not in Allowed, a fraction where Integer is set, a number outside
// Min..Max. A null value counts as absent. Attributes the schema does not
// declare are kept as they are (the host refuses them in taskiq.hcl).
func (s Schema) Prepare(raw json.RawMessage) (json.RawMessage, error) {
	out, err := s.prepare(raw, true)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// defaults is the config a block with no attributes gets: every default,
// required attributes left out. A middleware's hooks are detected on a value
// built from it.
func (s Schema) defaults() (json.RawMessage, error) {
	out, err := s.prepare(nil, false)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// prepare is Prepare that also returns, with its errors, the block it
// could build: a value that fails its check is replaced by the default (or
// left out), so the rest can still be decoded and checked.
func (s Schema) prepare(raw json.RawMessage, required bool) (json.RawMessage, error) {
	values := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &values); err != nil {
			return nil, fmt.Errorf("the config block is not a JSON object: %w", err)
		}
	}
	var errs []error
	var buf bytes.Buffer
	buf.WriteByte('{')
	for _, a := range s.Attributes {
		v, ok := values[a.Name]
		if ok && string(bytes.TrimSpace(v)) == "null" {
			ok = false
		}
		if !ok {
			if a.Required && required {
				errs = append(errs, AttrError(a.Name, "is required"))
				continue
			}
			if a.Default == nil {
				continue
			}
			d, err := a.DefaultJSON()
			if err != nil {
				errs = append(errs, AttrError(a.Name, "the plugin's default is invalid (a bug in the plugin): %v", err))
				continue
			}
			v = d
		} else if err := a.Check(v); err != nil {
			errs = append(errs, AttrError(a.Name, "%v", err))
			if v, err = a.DefaultJSON(); err != nil || v == nil {
				continue
			}
		}
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		key, _ := json.Marshal(a.Name)
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(bytes.TrimSpace(v))
	}
	// Attributes the schema does not declare are passed on as they are: the
	// host refuses them in taskiq.hcl, and a plugin may read Raw itself.
	var extra []string
	for name := range values {
		if _, ok := s.attribute(name); !ok {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	for _, name := range extra {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		key, _ := json.Marshal(name)
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(bytes.TrimSpace(values[name]))
	}
	buf.WriteByte('}')
	return buf.Bytes(), errors.Join(errs...)
}

// attribute returns the attribute of exactly that name (JSON keys are case
// sensitive, unlike Schema.Attribute's lookup).
func (s Schema) attribute(name string) (Attribute, bool) {
	for _, a := range s.Attributes {
		if a.Name == name {
			return a, true
		}
	}
	return Attribute{}, false
}

// DefaultJSON returns the attribute's default as JSON (nil when it has
// none), checked as a value of the attribute. A time.Duration default is
// written as its duration string; a json.RawMessage is taken as it is.
func (a Attribute) DefaultJSON() (json.RawMessage, error) {
	var raw json.RawMessage
	switch d := a.Default.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		raw = d
	case time.Duration:
		raw, _ = json.Marshal(d.String())
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	if err := a.Check(raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// Check reports whether value, the JSON encoding of one value of the
// attribute, fits its type, Allowed, Integer, Min and Max (seconds, for a
// duration). The error does not
// name the attribute; wrap it in AttrError. The host checks the values of
// taskiq.hcl with it, so a plugin's schema is enforced the same way on both
// sides of the process boundary.
func (a Attribute) Check(value json.RawMessage) error {
	switch a.Type {
	case TypeString:
		var s string
		if err := json.Unmarshal(value, &s); err != nil {
			return fmt.Errorf("must be a string, got %s", value)
		}
		return a.checkAllowed(s)
	case TypeDuration:
		var s string
		if err := json.Unmarshal(value, &s); err != nil {
			return fmt.Errorf("must be a duration string such as \"30s\" or \"1m30s\", got %s", value)
		}
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		return a.checkDuration(d)
	case TypeBool:
		var b bool
		if err := json.Unmarshal(value, &b); err != nil {
			return fmt.Errorf("must be true or false, got %s", value)
		}
		return nil
	case TypeNumber:
		var n float64
		if err := json.Unmarshal(value, &n); err != nil {
			return fmt.Errorf("must be a number, got %s", value)
		}
		return a.CheckNumber(n)
	case TypeStringList:
		var list []string
		if err := json.Unmarshal(value, &list); err != nil {
			return fmt.Errorf("must be a list of strings, got %s", value)
		}
		for i, s := range list {
			if err := a.checkAllowed(s); err != nil {
				return fmt.Errorf("element %d %w", i, err)
			}
		}
		return nil
	case TypeStringMap:
		var m map[string]string
		if err := json.Unmarshal(value, &m); err != nil {
			return fmt.Errorf("must be a map of strings, got %s", value)
		}
		return nil
	}
	return fmt.Errorf("has unknown type %q (a bug in the plugin's schema)", a.Type)
}

// CheckNumber reports whether n fits the attribute's Integer, Min and Max.
func (a Attribute) CheckNumber(n float64) error {
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return fmt.Errorf("must be a finite number, got %v", n)
	}
	if a.Integer && n != math.Trunc(n) {
		return fmt.Errorf("must be a whole number, got %s", formatNumber(n))
	}
	if a.Min != nil && n < *a.Min {
		return fmt.Errorf("must be at least %s, got %s", formatNumber(*a.Min), formatNumber(n))
	}
	if a.Max != nil && n > *a.Max {
		return fmt.Errorf("must be at most %s, got %s", formatNumber(*a.Max), formatNumber(n))
	}
	return nil
}

// checkDuration reports whether d fits the attribute's Min and Max, which
// are seconds for a duration.
func (a Attribute) checkDuration(d time.Duration) error {
	if a.Min != nil && d.Seconds() < *a.Min {
		return fmt.Errorf("must be at least %s, got %s", secondsText(*a.Min), d)
	}
	if a.Max != nil && d.Seconds() > *a.Max {
		return fmt.Errorf("must be at most %s, got %s", secondsText(*a.Max), d)
	}
	return nil
}

// secondsText writes a bound in seconds as a duration ("100ms").
func secondsText(s float64) string {
	return time.Duration(math.Round(s * float64(time.Second))).String()
}

// BoundText writes a Min or Max of the attribute as it is configured: a
// duration for a duration attribute ("100ms"), else a number ("16777216").
func (a Attribute) BoundText(b float64) string {
	if a.Type == TypeDuration {
		return secondsText(b)
	}
	return formatNumber(b)
}

func (a Attribute) checkAllowed(s string) error {
	if len(a.Allowed) == 0 || slices.Contains(a.Allowed, s) {
		return nil
	}
	quoted := make([]string, len(a.Allowed))
	for i, v := range a.Allowed {
		quoted[i] = strconv.Quote(v)
	}
	return fmt.Errorf("must be one of %s, got %q", strings.Join(quoted, ", "), s)
}

// formatNumber writes a number as a whole number when it is one
// (16777216, not 1.6777216e+07).
func formatNumber(n float64) string {
	return strconv.FormatFloat(n, 'f', -1, 64)
}

// parseDuration accepts Go duration strings of zero or more.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write a number with a unit, such as \"30s\", \"5m\" or \"1h30m\"", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative; durations must be zero or more", s)
	}
	return d, nil
}
