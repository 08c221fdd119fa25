package retry

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

func TestParseOptionsDefaults(t *testing.T) {
	t.Parallel()
	want := options{
		MaxRetries: 3, Backoff: Exponential, Delay: time.Second, MaxDelay: 5 * time.Minute,
		Jitter: true, DeadLetterOnExhaustion: true,
	}
	for _, raw := range []string{"", "{}", `{"max_retries": null, "backoff": null, "delay": null, "retry_on": null}`} {
		o, err := parseOptions(json.RawMessage(raw))
		require.NoError(t, err, raw)
		require.Equal(t, want, o, raw)
	}
}

// TestParseOptionsSchemaDefaults decodes the block the host builds from the
// schema's defaults: it must equal the built-in defaults.
func TestParseOptionsSchemaDefaults(t *testing.T) {
	t.Parallel()
	block := map[string]any{}
	for _, a := range Schema.Attributes {
		block[a.Name] = a.Default
	}
	raw, err := json.Marshal(block)
	require.NoError(t, err)
	o, err := parseOptions(raw)
	require.NoError(t, err)
	require.Equal(t, defaultOptions(), o)
}

func TestParseOptionsAll(t *testing.T) {
	t.Parallel()
	o, err := parseOptions(json.RawMessage(`{
		"default_retry_label": true, "max_retries": 7, "backoff": "Linear",
		"delay": "250ms", "max_delay": "1m", "jitter": false,
		"retry_on": ["TimeoutError"], "no_retry_on": ["ValueError", "KeyError"],
		"store_intermediate_results": true, "dead_letter_on_exhaustion": false,
		"broker": "slow"}`))
	require.NoError(t, err)
	require.Equal(t, options{
		DefaultRetryLabel: true, MaxRetries: 7, Backoff: Linear,
		Delay: 250 * time.Millisecond, MaxDelay: time.Minute, Jitter: false,
		RetryOn: []string{"TimeoutError"}, NoRetryOn: []string{"ValueError", "KeyError"},
		StoreIntermediateResults: true, DeadLetterOnExhaustion: false, Broker: "slow",
	}, o)

	o, err = parseOptions(json.RawMessage(`{"delay": "0s", "max_delay": "0s"}`))
	require.NoError(t, err, "immediate retries are a valid choice")
	require.Zero(t, o.Delay)
}

func TestParseOptionsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		attr string
		msg  string
	}{
		{`{"max_retries": 0}`, "max_retries", "must be a whole number >= 1"},
		{`{"max_retries": 2.5}`, "max_retries", "must be a whole number, got 2.5"},
		{`{"max_retries": 1e12}`, "max_retries", "must be a whole number >= 1"},
		{`{"max_retries": "3"}`, "max_retries", "must be a whole number"},
		{`{"backoff": "expo"}`, "backoff", `unknown backoff "expo"; use "fixed", "linear" or "exponential"`},
		{`{"delay": "soon"}`, "delay", `"soon" is not a duration; write a number with a unit, such as "30s"`},
		{`{"delay": 5}`, "delay", "must be a duration string"},
		{`{"delay": "-1s"}`, "delay", "is negative"},
		{`{"max_delay": "-1s", "delay": "0s"}`, "max_delay", "is negative"},
		{`{"delay": "10s", "max_delay": "5s"}`, "max_delay", "(5s) is smaller than delay (10s)"},
		{`{"jitter": "yes"}`, "jitter", "must be true or false"},
		{`{"retry_on": "TimeoutError"}`, "retry_on", "must be a list of strings"},
		{`{"no_retry_on": ["ok", " "]}`, "no_retry_on", "element 1 is empty"},
		{`{"broker": 3}`, "broker", "must be a string"},
	}
	for _, tt := range tests {
		_, err := parseOptions(json.RawMessage(tt.raw))
		ces := sdk.ConfigErrors(err)
		require.Len(t, ces, 1, tt.raw)
		require.Equal(t, tt.attr, ces[0].Attribute, tt.raw)
		require.Contains(t, ces[0].Message, tt.msg, tt.raw)
	}

	// Every problem is reported at once.
	_, err := parseOptions(json.RawMessage(`{"max_retries": 0, "backoff": "x", "delay": "y"}`))
	var attrs []string
	for _, ce := range sdk.ConfigErrors(err) {
		attrs = append(attrs, ce.Attribute)
	}
	require.ElementsMatch(t, []string{"max_retries", "backoff", "delay"}, attrs)

	_, err = parseOptions(json.RawMessage(`[1]`))
	require.ErrorContains(t, err, "not a JSON object")
}

func TestSchemaDocumentsEveryAttribute(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for _, a := range Schema.Attributes {
		require.NotEmpty(t, a.Description, a.Name)
		require.False(t, a.Required, a.Name)
		require.False(t, names[a.Name], "duplicate %s", a.Name)
		names[a.Name] = true
	}
	require.Len(t, names, 11)
	for _, n := range []string{"default_retry_label", "max_retries", "backoff", "delay", "max_delay",
		"jitter", "retry_on", "no_retry_on", "store_intermediate_results",
		"dead_letter_on_exhaustion", "broker"} {
		require.True(t, names[n], n)
	}
}

// Check (what `taskiq config validate` runs, with no host) refuses what New
// refuses from the config alone.
func TestCheckCatchesBadOptions(t *testing.T) {
	t.Parallel()
	check := Plugin().Middleware.Check
	require.NoError(t, check(context.Background(), sdk.Config{Raw: json.RawMessage(`{"backoff": "fixed"}`)}))
	err := check(context.Background(), sdk.Config{Raw: json.RawMessage(`{"backoff": "expo", "delay": "10s", "max_delay": "5s"}`)})
	require.ElementsMatch(t, []string{"backoff", "max_delay"}, attrsOf(err))

	_, err = Schema.Prepare(json.RawMessage(`{"max_retries": 0}`))
	require.ErrorContains(t, err, "max_retries: must be at least 1, got 0")
}

func attrsOf(err error) []string {
	var out []string
	for _, ce := range sdk.ConfigErrors(err) {
		out = append(out, ce.Attribute)
	}
	return out
}
