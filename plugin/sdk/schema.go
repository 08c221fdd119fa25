package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// AttrType is the type of a config attribute.
type AttrType string

// Attribute types. Durations are written as Go duration strings ("1h30m").
const (
	TypeString     AttrType = "string"
	TypeNumber     AttrType = "number"
	TypeBool       AttrType = "bool"
	TypeDuration   AttrType = "duration"
	TypeStringList AttrType = "list(string)"
	TypeStringMap  AttrType = "map(string)"
)

// Attribute describes one attribute of a plugin's config block.
type Attribute struct {
	Name     string
	Type     AttrType
	Required bool
	// Default is used when the attribute is absent; nil means none.
	Default any
	// Sensitive values never appear in logs, diagnostics or `taskiq plugins info`.
	Sensitive   bool
	Description string
	// Allowed lists the values a string attribute (or each element of a
	// list(string)) may take; empty allows any.
	Allowed []string
	// Integer makes a number attribute accept whole numbers only.
	Integer bool
	// Min and Max bound a number attribute, inclusive; nil is unbounded.
	// Write them with Num: Min: sdk.Num(1). For a duration attribute they
	// are seconds; write them with Seconds: Min: sdk.Seconds(time.Second).
	Min, Max *float64
}

// Schema is the config block a role accepts. The host decodes the block of
// taskiq.hcl against it, so unknown attributes, wrong types, values outside
// Allowed, fractions of Integer attributes and numbers or durations outside
// Min..Max are reported with file:line:col before the plugin sees anything.
type Schema struct {
	Attributes []Attribute
}

// Config is what a role's constructor receives.
type Config struct {
	// Name is the block label in taskiq.hcl ("default" in broker "default").
	Name string
	// Raw is the decoded config block as a JSON object, defaults applied.
	Raw json.RawMessage
	// Host reaches back into the host; nil when the role runs without one.
	Host Host
	// Logger writes to the host's log at the host's level.
	Logger hclog.Logger
	// MaxMessageSize is the largest message body the host accepts, in bytes.
	MaxMessageSize int
}

// AttrError reports a problem with one attribute; the host turns it into a
// diagnostic that points at the attribute in taskiq.hcl. Join several with
// errors.Join.
func AttrError(attr string, format string, args ...any) error {
	return &ConfigError{Attribute: attr, Message: fmt.Sprintf(format, args...)}
}

// ConfigError is a configuration problem, optionally tied to an attribute.
type ConfigError struct {
	Attribute string
	Message   string
}

func (e *ConfigError) Error() string {
	if e.Attribute == "" {
		return e.Message
	}
	return e.Attribute + ": " + e.Message
}

// ConfigErrors flattens err (possibly joined) into ConfigErrors; errors that
// are not ConfigErrors become block-level ones.
func ConfigErrors(err error) []*ConfigError {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*ConfigError
		for _, e := range j.Unwrap() {
			out = append(out, ConfigErrors(e)...)
		}
		return out
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		return []*ConfigError{ce}
	}
	return []*ConfigError{{Message: err.Error()}}
}

// Redact replaces the values of sensitive attributes in a config map.
func (s Schema) Redact(values map[string]any) map[string]any {
	out := make(map[string]any, len(values))
	for k, v := range values {
		out[k] = v
	}
	for _, a := range s.Attributes {
		if _, ok := out[a.Name]; ok && a.Sensitive {
			out[a.Name] = "(sensitive)"
		}
	}
	return out
}

// Attribute returns the named attribute.
func (s Schema) Attribute(name string) (Attribute, bool) {
	for _, a := range s.Attributes {
		if strings.EqualFold(a.Name, name) {
			return a, true
		}
	}
	return Attribute{}, false
}
