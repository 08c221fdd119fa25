package sdk_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// attrsOf lists the attributes of the config errors in err, in order.
func attrsOf(err error) []string {
	var out []string
	for _, ce := range sdk.ConfigErrors(err) {
		out = append(out, ce.Attribute)
	}
	return out
}

func TestDecodeTypedFields(t *testing.T) {
	t.Parallel()
	type conn struct {
		URL string `json:"url"`
	}
	type config struct {
		conn
		Lease    time.Duration     `json:"lease"`
		Timeout  *time.Duration    `json:"timeout"`
		Count    int               `json:"count"`
		Small    int8              `json:"small"`
		Size     uint64            `json:"size"`
		Ratio    float64           `json:"ratio"`
		On       bool              `json:"on"`
		Name     string            `json:"name"`
		Subjects []string          `json:"subjects"`
		Headers  map[string]string `json:"headers"`
		Absent   *int              `json:"absent"`
		Skipped  string            `json:"-"`
		Untagged int
	}
	raw := `{"url": "nats://x", "lease": "1m30s", "timeout": "250ms", "count": 1e3, "small": -8,
		"size": 18446744073709551615, "ratio": 0.5, "on": true, "name": "n", "subjects": ["a", "b"],
		"headers": {"k": "v"}, "absent": null, "Skipped": "x", "untagged": 7}`
	var c config
	require.NoError(t, sdk.Config{Raw: json.RawMessage(raw)}.Decode(&c))
	ms := 250 * time.Millisecond
	require.Equal(t, config{
		conn: conn{URL: "nats://x"}, Lease: 90 * time.Second, Timeout: &ms, Count: 1000, Small: -8,
		Size: 18446744073709551615, Ratio: 0.5, On: true, Name: "n", Subjects: []string{"a", "b"},
		Headers: map[string]string{"k": "v"}, Untagged: 7,
	}, c)

	// An empty block leaves every field as it was.
	c2 := config{Count: 5}
	require.NoError(t, sdk.Config{}.Decode(&c2))
	require.Equal(t, config{Count: 5}, c2)
}

func TestDecodeErrorsNameTheAttribute(t *testing.T) {
	t.Parallel()
	type config struct {
		Lease    time.Duration     `json:"lease"`
		Count    int               `json:"count"`
		Small    int8              `json:"small"`
		Size     uint              `json:"size"`
		On       bool              `json:"on"`
		Name     string            `json:"name"`
		Subjects []string          `json:"subjects"`
		Headers  map[string]string `json:"headers"`
	}
	for _, tc := range []struct{ raw, attr, msg string }{
		{`{"lease": "soon"}`, "lease", `"soon" is not a duration`},
		{`{"lease": "-1s"}`, "lease", "is negative"},
		{`{"lease": 30}`, "lease", "must be a duration string"},
		{`{"count": 1.5}`, "count", "must be a whole number, got 1.5"},
		{`{"count": "3"}`, "count", "must be a whole number"},
		{`{"small": 300}`, "small", "300 is out of range for int8"},
		{`{"size": -1}`, "size", "must not be negative"},
		{`{"on": "yes"}`, "on", "must be true or false"},
		{`{"name": 5}`, "name", "must be a string, got 5"},
		{`{"subjects": "a"}`, "subjects", "must be a list of strings"},
		{`{"headers": ["a"]}`, "headers", "must be a map of strings"},
	} {
		var c config
		err := sdk.Config{Raw: json.RawMessage(tc.raw)}.Decode(&c)
		ces := sdk.ConfigErrors(err)
		require.Len(t, ces, 1, tc.raw)
		require.Equal(t, tc.attr, ces[0].Attribute, tc.raw)
		require.Contains(t, ces[0].Message, tc.msg, tc.raw)
	}

	// Every bad attribute is reported, and the good ones are decoded.
	var c config
	err := sdk.Config{Raw: json.RawMessage(`{"lease": "x", "count": 0.5, "name": "ok"}`)}.Decode(&c)
	require.ElementsMatch(t, []string{"lease", "count"}, attrsOf(err))
	require.Equal(t, "ok", c.Name)

	err = sdk.Config{Raw: json.RawMessage(`[1]`)}.Decode(&c)
	require.ErrorContains(t, err, "not a JSON object")
}

func TestSchemaPrepare(t *testing.T) {
	t.Parallel()
	s := sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "storage", Type: sdk.TypeString, Default: "file", Allowed: []string{"file", "memory"}},
		{Name: "replicas", Type: sdk.TypeNumber, Default: 1, Integer: true, Min: sdk.Num(1), Max: sdk.Num(5)},
		{Name: "connect_timeout", Type: sdk.TypeDuration, Default: 5 * time.Second,
			Min: sdk.Seconds(100 * time.Millisecond), Max: sdk.Seconds(time.Hour)},
		{Name: "subjects", Type: sdk.TypeStringList, Allowed: []string{"a", "b"}},
		{Name: "url", Type: sdk.TypeString, Required: true},
	}}

	raw, err := s.Prepare(json.RawMessage(`{"url": "nats://x", "replicas": null, "extra": 1}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"storage": "file", "replicas": 1, "connect_timeout": "5s", "url": "nats://x", "extra": 1}`, string(raw))

	raw, err = s.Prepare(json.RawMessage(`{"url": "u", "storage": "memory", "replicas": 3, "connect_timeout": "1m", "subjects": ["b"]}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"storage": "memory", "replicas": 3, "connect_timeout": "1m", "subjects": ["b"], "url": "u"}`, string(raw))

	for _, tc := range []struct{ raw, attr, msg string }{
		{`{"url": "u", "storage": "disk"}`, "storage", `must be one of "file", "memory", got "disk"`},
		{`{"url": "u", "replicas": 1.5}`, "replicas", "must be a whole number, got 1.5"},
		{`{"url": "u", "replicas": 0}`, "replicas", "must be at least 1, got 0"},
		{`{"url": "u", "replicas": 16777216}`, "replicas", "must be at most 5, got 16777216"},
		{`{"url": "u", "connect_timeout": ""}`, "connect_timeout", `"" is not a duration`},
		{`{"url": "u", "connect_timeout": "50ms"}`, "connect_timeout", "must be at least 100ms, got 50ms"},
		{`{"url": "u", "connect_timeout": "90m"}`, "connect_timeout", "must be at most 1h0m0s, got 1h30m0s"},
		{`{"url": "u", "subjects": ["a", "c"]}`, "subjects", `element 1 must be one of "a", "b", got "c"`},
		{`{}`, "url", "is required"},
	} {
		_, err := s.Prepare(json.RawMessage(tc.raw))
		ces := sdk.ConfigErrors(err)
		require.Len(t, ces, 1, tc.raw)
		require.Equal(t, tc.attr, ces[0].Attribute, tc.raw)
		require.Contains(t, ces[0].Message, tc.msg, tc.raw)
	}

	bad := sdk.Schema{Attributes: []sdk.Attribute{{Name: "n", Type: sdk.TypeNumber, Default: 9, Max: sdk.Num(5)}}}
	_, err = bad.Prepare(nil)
	require.ErrorContains(t, err, "the plugin's default is invalid")
}

func TestSchemaDecode(t *testing.T) {
	t.Parallel()
	s := sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "wait", Type: sdk.TypeDuration, Default: "5s", Min: sdk.Seconds(time.Millisecond)},
		{Name: "count", Type: sdk.TypeNumber, Default: 3, Integer: true},
	}}
	var c struct {
		Wait  time.Duration `json:"wait"`
		Count int           `json:"count"`
	}
	require.NoError(t, s.Decode(sdk.Config{Raw: json.RawMessage(`{"count": 7}`)}, &c))
	require.Equal(t, 5*time.Second, c.Wait, "the default of an absent attribute")
	require.Equal(t, 7, c.Count)
	ces := sdk.ConfigErrors(s.Decode(sdk.Config{Raw: json.RawMessage(`{"wait": "0s", "count": 9}`)}, &c))
	require.Len(t, ces, 1)
	require.Equal(t, "wait", ces[0].Attribute)
	require.Equal(t, "must be at least 1ms, got 0s", ces[0].Message)
	require.Equal(t, 5*time.Second, c.Wait, "an invalid value gives way to the default")
	require.Equal(t, 9, c.Count, "the valid values are decoded all the same")
}

// A plugin launched by sdktest gets its schema's defaults, as one launched
// by the host from taskiq.hcl does: the fake result backend refuses a zero
// ttl, and its schema's default is "1h".
func TestSdktestAppliesDefaults(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindResultBackend, `{}`)
	body, err := c.ResultBackend().GetResult(ctx, "__config__")
	require.NoError(t, err)
	var got struct {
		TTL   time.Duration `json:"TTL"`
		Tags  []string      `json:"Tags"`
		Limit int           `json:"Limit"`
	}
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, time.Hour, got.TTL)
	require.Equal(t, []string{"a", "b"}, got.Tags)
	require.Equal(t, 3, got.Limit)
}

func TestCheckConfig(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, "", "")

	for _, tc := range []struct{ raw, attr, msg string }{
		{`{"queue": "q", "storage": "disk"}`, "storage", `must be one of "memory", "file", got "disk"`},
		{`{"queue": "q", "replicas": 1.5}`, "replicas", "must be a whole number"},
		{`{"queue": "q", "replicas": 9}`, "replicas", "must be at most 5"},
		{`{"queue": "q", "max_outstanding": -1}`, "max_outstanding", "must not be negative"}, // the plugin's Check
		{`{}`, "queue", "is required"},
	} {
		errs, err := c.CheckConfig(ctx, sdk.KindBroker, "default", json.RawMessage(tc.raw))
		require.NoError(t, err)
		require.Len(t, errs, 1, tc.raw)
		require.Equal(t, tc.attr, errs[0].Attribute, tc.raw)
		require.Contains(t, errs[0].Message, tc.msg, tc.raw)
	}
	errs, err := c.CheckConfig(ctx, sdk.KindBroker, "default", json.RawMessage(`{"queue": "q"}`))
	require.NoError(t, err)
	require.Empty(t, errs)

	// A role without Check: its schema is checked, and that is all.
	errs, err = c.CheckConfig(ctx, sdk.KindResultBackend, "default", json.RawMessage(`{"ttl": "soon"}`))
	require.NoError(t, err)
	require.Len(t, errs, 1)
	require.Equal(t, "ttl", errs[0].Attribute)

	errs, err = c.CheckConfig(ctx, sdk.Kind("scheduler"), "default", nil)
	require.NoError(t, err)
	require.Len(t, errs, 1)
	require.Contains(t, errs[0].Message, `does not serve the "scheduler" role`)

	// Checking configures nothing.
	err = c.Broker().Kick(ctx, outgoing(1, "x"))
	require.ErrorContains(t, err, "plugin not configured")
}

func TestBrokerMessageSizeLimit(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindBroker, `{"queue": "q", "max_message_size": 100}`)
	require.Equal(t, 100, c.RoleMaxMessageSize())
	b := c.Broker()
	lim, ok := b.(sdk.MessageSizeLimiter)
	require.True(t, ok)
	require.Equal(t, 100, lim.MaxMessageSize())

	big := sdk.Outgoing{TaskID: "big", TaskName: "t", Body: []byte(`{"x":"` + strings.Repeat("a", 200) + `"}`)}
	err := b.Kick(ctx, []sdk.Outgoing{big})
	require.ErrorIs(t, err, sdk.ErrMessageTooLarge)
	require.ErrorContains(t, err, "over the limit of broker plugin")
	require.ErrorContains(t, err, "(100 bytes; the host's max_message_size is 16777216)")

	require.NoError(t, b.Kick(ctx, outgoing(1, "small")))

	// Without max_message_size the Factory's limit applies; Info shows it.
	c = sdktest.Launch(t, sdk.KindBroker, `{"queue": "q"}`)
	require.Equal(t, fakeBrokerMaxSize, c.RoleMaxMessageSize())
	info, err := c.Info(ctx)
	require.NoError(t, err)
	role, _ := info.Role(sdk.KindBroker)
	require.Equal(t, fakeBrokerMaxSize, role.MaxMessageSize)
	err = c.Broker().Kick(ctx, []sdk.Outgoing{{TaskID: "big", TaskName: "t", Body: make([]byte, fakeBrokerMaxSize+1)}})
	require.ErrorIs(t, err, sdk.ErrMessageTooLarge)
}

// A plugin built with the first release of protocol v1 (no CheckConfig, no
// schema constraints, no message size limit in its answers) loads and works
// with this host: CheckConfig says ErrUnsupported, so config validate falls
// back to the host's schema checks, and the rest works as before.
func TestBaselineV1PluginWorks(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, "", "", sdktest.WithEnv(envFakeMode+"=baseline"))

	info, err := c.Info(ctx)
	require.NoError(t, err)
	role, ok := info.Role(sdk.KindBroker)
	require.True(t, ok)
	storage, ok := role.Schema.Attribute("storage")
	require.True(t, ok)
	require.Empty(t, storage.Allowed, "the baseline plugin sends no constraints")

	_, err = c.CheckConfig(ctx, sdk.KindBroker, "default", json.RawMessage(`{"queue": "q"}`))
	require.ErrorIs(t, err, sdk.ErrUnsupported)
	require.False(t, errors.Is(err, sdk.ErrUnavailable), "the plugin is alive: %v", err)

	errs, err := c.Configure(ctx, sdk.KindBroker, "default", json.RawMessage(`{"queue": "q", "max_message_size": 100}`))
	require.NoError(t, err)
	require.Empty(t, errs)
	require.Zero(t, c.RoleMaxMessageSize(), "no limit of its own reaches the host")

	b := c.Broker()
	require.NoError(t, b.Kick(ctx, outgoing(3, "old")))
	s, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	ds := recvN(t, ctx, s, 3)
	require.NoError(t, s.Settle(ctx, acks(ds)))
	require.NoError(t, s.Close())
}
