package inmemory

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

func TestPluginDescription(t *testing.T) {
	t.Parallel()
	p := Plugin()
	require.Equal(t, "taskiq-inmemory", p.Name)
	require.Equal(t, Version, p.Version)
	require.NotNil(t, p.Broker)
	require.NotNil(t, p.ResultBackend)
	require.Nil(t, p.Middleware)
	require.ElementsMatch(t, []string{"delay", "priority", "lease", "dead_letter", "routing"}, p.Broker.Capabilities)
	require.ElementsMatch(t, []string{"wait", "progress"}, p.ResultBackend.Capabilities)

	wantDefaults := map[string]any{"queue": "taskiq", "lease": "30s", "max_attempts": 0}
	for name, def := range wantDefaults {
		a, ok := p.Broker.Schema.Attribute(name)
		require.True(t, ok, name)
		require.Equal(t, def, a.Default, name)
	}
	wantDefaults = map[string]any{"result_ttl": "0s", "keep_results": true}
	for name, def := range wantDefaults {
		a, ok := p.ResultBackend.Schema.Attribute(name)
		require.True(t, ok, name)
		require.Equal(t, def, a.Default, name)
	}
	for _, s := range []sdk.Schema{p.Broker.Schema, p.ResultBackend.Schema} {
		for _, a := range s.Attributes {
			require.NotEmpty(t, a.Description, a.Name)
			require.False(t, a.Required, a.Name)
		}
	}
}

func rawConfig(t *testing.T, v map[string]any) sdk.Config {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return sdk.Config{Name: "default", Raw: raw}
}

func TestBrokerConfig(t *testing.T) {
	t.Parallel()
	opts, err := brokerOptionsFromConfig(rawConfig(t, map[string]any{"queue": "jobs", "lease": "5m", "max_attempts": 4}))
	require.NoError(t, err)
	require.Equal(t, "jobs", opts.Queue)
	require.Equal(t, 5*time.Minute, opts.Lease)
	require.Equal(t, 4, opts.MaxAttempts)

	// Built by the factory with no config at all (no host): defaults.
	b, err := Plugin().Broker.New(context.Background(), sdk.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close(context.Background())) })
	ib := b.(*Broker)
	require.Equal(t, DefaultQueue, ib.opts.Queue)
	require.Equal(t, DefaultLease, ib.opts.Lease)
	require.Equal(t, 0, ib.opts.MaxAttempts)
}

func TestBrokerConfigErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		cfg      map[string]any
		attrs    []string
		contains string
	}{
		{map[string]any{"lease": "soon"}, []string{"lease"}, "not a duration"},
		{map[string]any{"lease": "-1s"}, []string{"lease"}, "negative"},
		{map[string]any{"lease": "0s"}, []string{"lease"}, "must be positive"},
		{map[string]any{"lease": 30}, []string{"lease"}, "must be a duration string"},
		{map[string]any{"max_attempts": -1}, []string{"max_attempts"}, "whole number"},
		{map[string]any{"max_attempts": 1.5}, []string{"max_attempts"}, "whole number"},
		{map[string]any{"lease": "x", "max_attempts": -2}, []string{"lease", "max_attempts"}, ""},
	}
	for _, tc := range cases {
		_, err := Plugin().Broker.New(context.Background(), rawConfig(t, tc.cfg))
		require.Error(t, err, "%v", tc.cfg)
		var attrs []string
		for _, ce := range sdk.ConfigErrors(err) {
			attrs = append(attrs, ce.Attribute)
		}
		require.Equal(t, tc.attrs, attrs, "%v: %v", tc.cfg, err)
		require.ErrorContains(t, err, tc.contains)
	}
}

func TestResultConfig(t *testing.T) {
	t.Parallel()
	opts, err := resultOptionsFromConfig(rawConfig(t, map[string]any{"result_ttl": "1h", "keep_results": false}))
	require.NoError(t, err)
	require.Equal(t, ResultOptions{TTL: time.Hour, DiscardOnRead: true}, opts)

	opts, err = resultOptionsFromConfig(rawConfig(t, map[string]any{"result_ttl": "0s", "keep_results": true}))
	require.NoError(t, err)
	require.Equal(t, ResultOptions{}, opts)

	r, err := Plugin().ResultBackend.New(context.Background(), sdk.Config{})
	require.NoError(t, err)
	require.Implements(t, (*sdk.ResultWaiter)(nil), r)
	require.NoError(t, r.Close(context.Background()))

	for _, tc := range []struct {
		cfg  map[string]any
		attr string
	}{
		{map[string]any{"result_ttl": "forever"}, "result_ttl"},
		{map[string]any{"result_ttl": "-5m"}, "result_ttl"},
		{map[string]any{"keep_results": "yes"}, "keep_results"},
	} {
		_, err := Plugin().ResultBackend.New(context.Background(), rawConfig(t, tc.cfg))
		require.Error(t, err, "%v", tc.cfg)
		ces := sdk.ConfigErrors(err)
		require.Len(t, ces, 1)
		require.Equal(t, tc.attr, ces[0].Attribute, "%v", err)
	}
}

// Check (what `taskiq config validate` runs) refuses what New refuses, and
// builds nothing.
func TestCheckCatchesWhatNewRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, cfg := range []map[string]any{{"lease": "0s"}, {"max_attempts": -1}, {"max_attempts": 1.5}} {
		_, newErr := Plugin().Broker.New(ctx, rawConfig(t, cfg))
		require.Error(t, newErr, "%v", cfg)
		checkErr := Plugin().Broker.Check(ctx, rawConfig(t, cfg))
		require.Equal(t, newErr.Error(), checkErr.Error(), "%v", cfg)
	}
	require.NoError(t, Plugin().Broker.Check(ctx, rawConfig(t, map[string]any{"lease": "1s"})))
	require.Error(t, Plugin().ResultBackend.Check(ctx, rawConfig(t, map[string]any{"result_ttl": "forever"})))
	require.NoError(t, Plugin().ResultBackend.Check(ctx, rawConfig(t, map[string]any{"result_ttl": "1h"})))

	// The schema itself says max_attempts is a whole number of 0 or more.
	_, err := Plugin().Broker.Schema.Prepare(json.RawMessage(`{"max_attempts": 2.5}`))
	require.ErrorContains(t, err, "max_attempts: must be a whole number, got 2.5")
}
