package retry

import (
	"encoding/json"
	"errors"
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
		Integer: true, Min: sdk.Num(1), Max: sdk.Num(math.MaxInt32),
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
	DefaultRetryLabel        bool          `json:"default_retry_label"`
	MaxRetries               int           `json:"max_retries"`
	Backoff                  Strategy      `json:"backoff"`
	Delay                    time.Duration `json:"delay"`
	MaxDelay                 time.Duration `json:"max_delay"`
	Jitter                   bool          `json:"jitter"`
	RetryOn                  []string      `json:"retry_on"`
	NoRetryOn                []string      `json:"no_retry_on"`
	StoreIntermediateResults bool          `json:"store_intermediate_results"`
	DeadLetterOnExhaustion   bool          `json:"dead_letter_on_exhaustion"`
	Broker                   string        `json:"broker"`
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
	var errs []error
	fail := func(attr, format string, args ...any) {
		errs = append(errs, sdk.AttrError(attr, format, args...))
	}
	// A value Decode refuses leaves its default in place, so the checks
	// below still run on the others.
	if err := (sdk.Config{Raw: raw}).Decode(&o); err != nil {
		errs = append(errs, err)
	}
	if o.MaxRetries < 1 || o.MaxRetries > math.MaxInt32 {
		fail("max_retries", "must be a whole number >= 1 (it counts every attempt, "+
			"the first included; 1 means never retry), got %d", o.MaxRetries)
		o.MaxRetries = DefaultMaxRetries
	}
	if st, err := ParseStrategy(string(o.Backoff)); err != nil {
		fail("backoff", "%v", err)
		o.Backoff = DefaultBackoff
	} else {
		o.Backoff = st
	}
	for _, list := range []struct {
		attr string
		v    []string
	}{{"retry_on", o.RetryOn}, {"no_retry_on", o.NoRetryOn}} {
		for i, s := range list.v {
			if strings.TrimSpace(s) == "" {
				fail(list.attr, "element %d is empty; list error type names such as \"TimeoutError\"", i)
				break
			}
		}
	}
	if o.Delay > 0 && o.MaxDelay < o.Delay {
		fail("max_delay", "(%s) is smaller than delay (%s), so every retry would wait "+
			"max_delay; raise max_delay or lower delay", o.MaxDelay, o.Delay)
	}
	return o, errors.Join(errs...)
}
