package retry

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Defaults of the config attributes.
const (
	DefaultMaxRetries = 3
	DefaultBackoff    = Exponential
	DefaultDelay      = time.Second
	DefaultMaxDelay   = 5 * time.Minute
)

// Schema is the middleware's config block in taskiq.hcl.
var Schema = sdk.Schema{Attributes: []sdk.Attribute{
	{
		Name: "default_retry_label", Type: sdk.TypeBool, Default: false,
		Description: "Retry tasks that have no retry_on_error label. A task's own label " +
			"(retry_on_error = true or false) always wins.",
	},
	{
		Name: "max_retries", Type: sdk.TypeNumber, Default: DefaultMaxRetries,
		Description: "Total number of attempts, the first execution included (taskiq's " +
			"meaning), for tasks without a max_retries label. 1 means never retry. " +
			"Must be a whole number >= 1.",
	},
	{
		Name: "backoff", Type: sdk.TypeString, Default: string(DefaultBackoff),
		Description: "How the delay grows between attempts: \"fixed\" (delay every time), " +
			"\"linear\" (delay × attempt) or \"exponential\" (delay × 2^(attempt-1)); " +
			"always capped at max_delay.",
	},
	{
		Name: "delay", Type: sdk.TypeDuration, Default: DefaultDelay.String(),
		Description: "Base delay of the backoff. \"0s\" retries immediately, which is the " +
			"only setting accepted with a broker that cannot delay messages.",
	},
	{
		Name: "max_delay", Type: sdk.TypeDuration, Default: DefaultMaxDelay.String(),
		Description: "Upper bound of the backoff (before jitter). Must be >= delay.",
	},
	{
		Name: "jitter", Type: sdk.TypeBool, Default: true,
		Description: "Full jitter: wait a uniformly random time between 0 and the computed " +
			"backoff, so tasks that failed together do not retry together.",
	},
	{
		Name: "retry_on", Type: sdk.TypeStringList,
		Description: "Retry only errors whose exc_type (or \"exc_module.exc_type\"), or that " +
			"of any error in its exc_cause chain, is in this list. Empty: every error.",
	},
	{
		Name: "no_retry_on", Type: sdk.TypeStringList,
		Description: "Never retry errors matching this list (same matching as retry_on); " +
			"wins over retry_on.",
	},
	{
		Name: "store_intermediate_results", Type: sdk.TypeBool, Default: false,
		Description: "Save the error result of every failed attempt, not only of the last " +
			"one. Readers of the result may then see a failure of a task that is still " +
			"being retried.",
	},
	{
		Name: "dead_letter_on_exhaustion", Type: sdk.TypeBool, Default: true,
		Description: "When the last attempt fails, also move the message to the broker's " +
			"dead-letter store (the error result is saved either way).",
	},
	{
		Name: "broker", Type: sdk.TypeString, Default: "",
		Description: "Name of the broker block retries are kicked through; empty: the " +
			"default broker.",
	},
}}

// options is the validated config.
type options struct {
	DefaultRetryLabel        bool
	MaxRetries               int
	Backoff                  Strategy
	Delay                    time.Duration
	MaxDelay                 time.Duration
	Jitter                   bool
	RetryOn                  []string
	NoRetryOn                []string
	StoreIntermediateResults bool
	DeadLetterOnExhaustion   bool
	Broker                   string
}

func defaultOptions() options {
	return options{
		MaxRetries:             DefaultMaxRetries,
		Backoff:                DefaultBackoff,
		Delay:                  DefaultDelay,
		MaxDelay:               DefaultMaxDelay,
		Jitter:                 true,
		DeadLetterOnExhaustion: true,
	}
}

// parseOptions decodes and validates the config block. Absent and null
// attributes keep their defaults, so an empty block is valid. Every problem
// is reported (joined), each on its attribute.
func parseOptions(raw json.RawMessage) (options, error) {
	o := defaultOptions()
	if len(raw) == 0 {
		return o, nil
	}
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &attrs); err != nil {
		return o, fmt.Errorf("the config block is not a JSON object: %w", err)
	}
	p := attrParser{attrs: attrs}
	p.bool("default_retry_label", &o.DefaultRetryLabel)
	p.bool("jitter", &o.Jitter)
	p.bool("store_intermediate_results", &o.StoreIntermediateResults)
	p.bool("dead_letter_on_exhaustion", &o.DeadLetterOnExhaustion)
	p.string("broker", &o.Broker)
	p.strings("retry_on", &o.RetryOn)
	p.strings("no_retry_on", &o.NoRetryOn)
	p.duration("delay", &o.Delay)
	p.duration("max_delay", &o.MaxDelay)

	var maxRetries float64 = DefaultMaxRetries
	if p.number("max_retries", &maxRetries) {
		switch {
		case maxRetries != math.Trunc(maxRetries) || maxRetries < 1 || maxRetries > math.MaxInt32:
			p.fail("max_retries", "must be a whole number >= 1 (it counts every attempt, "+
				"the first included; 1 means never retry), got %v", maxRetries)
		default:
			o.MaxRetries = int(maxRetries)
		}
	}

	backoff := string(o.Backoff)
	if p.string("backoff", &backoff) {
		st, err := ParseStrategy(backoff)
		if err != nil {
			p.fail("backoff", "%v", err)
		} else {
			o.Backoff = st
		}
	}
	if o.Delay < 0 {
		p.fail("delay", "must not be negative, got %s", o.Delay)
	}
	if o.MaxDelay < 0 {
		p.fail("max_delay", "must not be negative, got %s", o.MaxDelay)
	}
	if o.Delay > 0 && o.MaxDelay < o.Delay {
		p.fail("max_delay", "(%s) is smaller than delay (%s), so every retry would wait "+
			"max_delay; raise max_delay or lower delay", o.MaxDelay, o.Delay)
	}
	return o, errors.Join(p.errs...)
}

// attrParser reads attributes of a decoded config block and collects an
// attribute error for each one of the wrong shape.
type attrParser struct {
	attrs map[string]json.RawMessage
	errs  []error
}

func (p *attrParser) fail(attr, format string, args ...any) {
	p.errs = append(p.errs, sdk.AttrError(attr, format, args...))
}

// decode unmarshals attribute name into v; it returns false when the
// attribute is absent, null or malformed (then an error is recorded).
func (p *attrParser) decode(name, want string, v any) bool {
	raw, ok := p.attrs[name]
	if !ok || string(raw) == "null" {
		return false
	}
	if err := json.Unmarshal(raw, v); err != nil {
		p.fail(name, "must be %s, got %s", want, raw)
		return false
	}
	return true
}

func (p *attrParser) bool(name string, dst *bool) bool {
	return p.decode(name, "true or false", dst)
}

func (p *attrParser) string(name string, dst *string) bool {
	return p.decode(name, "a string", dst)
}

func (p *attrParser) number(name string, dst *float64) bool {
	return p.decode(name, "a number", dst)
}

func (p *attrParser) strings(name string, dst *[]string) {
	var list []string
	if !p.decode(name, "a list of strings", &list) {
		return
	}
	for i, s := range list {
		if strings.TrimSpace(s) == "" {
			p.fail(name, "element %d is empty; list error type names such as \"TimeoutError\"", i)
			return
		}
	}
	*dst = list
}

func (p *attrParser) duration(name string, dst *time.Duration) {
	var s string
	if !p.decode(name, "a duration string such as \"1s\" or \"1m30s\"", &s) {
		return
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		p.fail(name, "%q is not a duration; write it like \"500ms\", \"1s\" or \"1m30s\"", s)
		return
	}
	*dst = d
}
