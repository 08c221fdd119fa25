package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// redisSchema is a broker schema shaped like the Redis plugin's, with one
// attribute of every type.
var redisSchema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "url", Type: sdk.TypeString, Required: true},
	{Name: "queue", Type: sdk.TypeString, Default: "taskiq"},
	{Name: "lease", Type: sdk.TypeDuration, Default: "30s"},
	{Name: "block", Type: sdk.TypeDuration, Default: 2 * time.Second},
	{Name: "max_attempts", Type: sdk.TypeNumber, Default: float64(0)}, // as decoded from JSON
	{Name: "cluster", Type: sdk.TypeBool, Default: false},
	{Name: "nodes", Type: sdk.TypeStringList},
	{Name: "labels", Type: sdk.TypeStringMap, Default: map[string]any{"team": "core"}},
	{Name: "password", Type: sdk.TypeString, Sensitive: true},
	{Name: "token_ttl", Type: sdk.TypeDuration, Sensitive: true},
}}

// brokerBlock parses src (a whole taskiq.hcl) and returns its first broker.
func brokerBlock(t *testing.T, src string, env map[string]string) (*File, *PluginBlock) {
	t.Helper()
	f := mustParse(t, src, env)
	require.NotEmpty(t, f.Brokers)
	return f, f.Brokers[0]
}

func TestDecodePluginConfigDiagnostics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config string // lines of the config block; the block starts on line 1
		want   []string
	}{
		{
			name:   "typo",
			config: "url  = \"redis://x\"\nqueu = \"q\"",
			want:   []string{`taskiq.hcl:5:5: Unsupported argument; An argument named "queu" is not expected here. Did you mean "queue"?`},
		},
		{
			name:   "wrong type",
			config: "url = \"redis://x\"\nmax_attempts = \"many\"",
			want:   []string{`taskiq.hcl:5:20: Incorrect attribute value type; Inappropriate value for attribute "max_attempts": a number is required.`},
		},
		{
			name:   "wrong list type",
			config: "url = \"redis://x\"\nnodes = \"a\"",
			want:   []string{`taskiq.hcl:5:13: Incorrect attribute value type; Inappropriate value for attribute "nodes": list of string required, but have string.`},
		},
		{
			name:   "missing required attribute",
			config: "queue = \"q\"",
			want:   []string{`taskiq.hcl:3:10: Missing required argument; The argument "url" is required, but no definition was found.`},
		},
		{
			name:   "bad duration",
			config: "url = \"redis://x\"\nlease = \"soon\"",
			want:   []string{`taskiq.hcl:5:13: Invalid duration; lease: "soon" is not a duration; write a number with a unit, such as "30s", "5m" or "1h30m".`},
		},
		{
			name:   "unset env var points at the call",
			config: "url   = env(\"TASKIQ_TEST_REDIS_URL\")",
			want:   []string{`taskiq.hcl:4:13: Environment variable not set; env("TASKIQ_TEST_REDIS_URL") has no default and TASKIQ_TEST_REDIS_URL is not set. Export TASKIQ_TEST_REDIS_URL, or give a default: env("TASKIQ_TEST_REDIS_URL", "value").`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := "broker \"default\" {\n  plugin = \"taskiq-redis\"\n  config {\n    " +
				strings.ReplaceAll(tt.config, "\n", "\n    ") + "\n  }\n}\n"
			_, b := brokerBlock(t, src, nil)
			raw, diags := DecodePluginConfig(b, redisSchema)
			require.Nil(t, raw)
			require.Equal(t, tt.want, strings.Split(FormatDiagnostics(diags), "\n"), src)
		})
	}
}

func TestDecodePluginConfigTypoSuggestion(t *testing.T) {
	t.Parallel()
	_, b := brokerBlock(t, "broker \"default\" {\n  plugin = \"taskiq-redis\"\n  config {\n    url = \"redis://x\"\n    queu = \"q\"\n  }\n}\n", nil)
	_, diags := DecodePluginConfig(b, redisSchema)
	require.Len(t, diags, 1)
	require.Contains(t, strings.ToLower(diags[0].Detail), `did you mean "queue"`)
	require.Equal(t, hcl.Pos{Line: 5, Column: 5, Byte: 82}, diags[0].Subject.Start)
}

func TestDecodePluginConfigMissingBlock(t *testing.T) {
	t.Parallel()
	// No config block at all: the required attribute is reported on the
	// block header, not on an empty range.
	_, b := brokerBlock(t, "worker {}\nbroker \"default\" {\n  plugin = \"taskiq-redis\"\n}\n", nil)
	_, diags := DecodePluginConfig(b, redisSchema)
	require.Equal(t, `taskiq.hcl:2:1: Missing required argument; The argument "url" is required, but no definition was found.`,
		FormatDiagnostics(diags))

	// Without required attributes the defaults alone make the config.
	raw, diags := DecodePluginConfig(b, sdk.Schema{Attributes: []sdk.Attribute{{Name: "queue", Type: sdk.TypeString, Default: "taskiq"}}})
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
	require.JSONEq(t, `{"queue":"taskiq"}`, string(raw))
}

func TestDecodePluginConfigDefaults(t *testing.T) {
	t.Parallel()
	_, b := brokerBlock(t, `broker "default" {
  plugin = "taskiq-redis"
  config {
    url   = env("TASKIQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    nodes = ["a:1", "b:2"]
  }
}
`, nil)
	raw, diags := DecodePluginConfig(b, redisSchema)
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
	require.JSONEq(t, `{
		"url": "redis://127.0.0.1:6379/0",
		"queue": "taskiq",
		"lease": "30s",
		"block": "2s",
		"max_attempts": 0,
		"cluster": false,
		"nodes": ["a:1", "b:2"],
		"labels": {"team": "core"}
	}`, string(raw))

	// What the plugin receives decodes into its config struct.
	var cfg struct {
		URL         string            `json:"url"`
		MaxAttempts int               `json:"max_attempts"`
		Labels      map[string]string `json:"labels"`
	}
	require.NoError(t, sdk.Config{Raw: raw}.Decode(&cfg))
	require.Equal(t, "redis://127.0.0.1:6379/0", cfg.URL)
	require.Equal(t, map[string]string{"team": "core"}, cfg.Labels)
}

func TestDecodePluginConfigValues(t *testing.T) {
	t.Parallel()
	_, b := brokerBlock(t, `broker "default" {
  plugin = "taskiq-redis"
  config {
    url          = env("TASKIQ_TEST_REDIS_URL")
    queue        = "jobs"
    lease        = "1m30s"
    max_attempts = 5
    cluster      = true
    labels       = { env = "prod" }
    token_ttl    = "1h"
  }
}
`, map[string]string{"TASKIQ_TEST_REDIS_URL": "redis://db:6379/1"})
	raw, diags := DecodePluginConfig(b, redisSchema)
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
	var got map[string]any
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Equal(t, map[string]any{
		"url":          "redis://db:6379/1",
		"queue":        "jobs",
		"lease":        "1m30s",
		"block":        "2s",
		"max_attempts": float64(5),
		"cluster":      true,
		"labels":       map[string]any{"env": "prod"},
		"token_ttl":    "1h",
	}, got)
}

func TestDecodePluginConfigBrokenSchema(t *testing.T) {
	t.Parallel()
	_, b := brokerBlock(t, "broker \"default\" {\n  plugin = \"taskiq-redis\"\n}\n", nil)
	for _, schema := range []sdk.Schema{
		{Attributes: []sdk.Attribute{{Name: "q", Type: "float"}}},
		{Attributes: []sdk.Attribute{{Name: "not valid", Type: sdk.TypeString}}},
		{Attributes: []sdk.Attribute{{Name: "q", Type: sdk.TypeString}, {Name: "q", Type: sdk.TypeBool}}},
		{Attributes: []sdk.Attribute{{Name: "q", Type: sdk.TypeNumber, Default: "ten"}}},
		{Attributes: []sdk.Attribute{{Name: "q", Type: sdk.TypeDuration, Default: "ten"}}},
	} {
		_, diags := DecodePluginConfig(b, schema)
		require.Len(t, diags, 1, "%+v", schema)
		require.Equal(t, "Invalid plugin schema", diags[0].Summary)
		require.Contains(t, diags[0].Detail, "bug in the plugin")
		require.Equal(t, b.DeclRange, *diags[0].Subject)
	}
}

func TestPluginDiagnostics(t *testing.T) {
	t.Parallel()
	_, b := brokerBlock(t, `broker "default" {
  plugin = "taskiq-redis"
  config {
    url   = "http://x"
    queue = "jobs"
    tls   = { ca = "x" }
  }
}
`, nil)
	schema := sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "url", Type: sdk.TypeString},
		{Name: "queue", Type: sdk.TypeString},
		{Name: "mode", Type: sdk.TypeString, Default: "list"},
		{Name: "tls", Type: sdk.TypeStringMap},
	}}
	_, diags := DecodePluginConfig(b, schema)
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))

	errs := sdk.ConfigErrors(errors.Join(
		sdk.AttrError("url", "scheme %q is not supported; use redis:// or rediss://", "http"),
		sdk.AttrError("mode", "list mode needs Redis 5"),
		sdk.AttrError("tls.ca", "not a PEM certificate"),
		sdk.AttrError("", "cannot reach the server"),
	))
	diags = PluginDiagnostics(b, errs)
	require.Equal(t, []string{
		`taskiq.hcl:4:13: Invalid plugin configuration; The broker plugin "taskiq-redis" (broker "default") rejected "url": scheme "http" is not supported; use redis:// or rediss://`,
		`taskiq.hcl:1:1: Invalid plugin configuration; The broker plugin "taskiq-redis" (broker "default") rejected "mode": list mode needs Redis 5 ("mode" is not set in the config block, so the plugin's default was used; set it there.)`,
		`taskiq.hcl:6:13: Invalid plugin configuration; The broker plugin "taskiq-redis" (broker "default") rejected "tls.ca": not a PEM certificate`,
		`taskiq.hcl:1:1: Invalid plugin configuration; The broker plugin "taskiq-redis" (broker "default") rejected its configuration: cannot reach the server`,
	}, strings.Split(FormatDiagnostics(diags), "\n"))
}

func TestSensitiveValuesNeverInDiagnostics(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-s3cr3t"
	const secretTTL = "s3cr3t-ttl"
	f, b := brokerBlock(t, `broker "default" {
  plugin = "taskiq-redis"
  config {
    url       = "redis://x"
    password  = "`+secret+`"
    token_ttl = "`+secretTTL+`"
  }
}
`, nil)
	var all hcl.Diagnostics
	_, diags := DecodePluginConfig(b, redisSchema)
	require.True(t, diags.HasErrors(), "the sensitive duration is invalid")
	all = append(all, diags...)

	// Fix the duration through a schema that treats it as a string, then let
	// the plugin reject the password, quoting it as a careless plugin would.
	schema := sdk.Schema{Attributes: append([]sdk.Attribute(nil), redisSchema.Attributes...)}
	schema.Attributes[len(schema.Attributes)-1].Type = sdk.TypeString
	_, diags = DecodePluginConfig(b, schema)
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
	all = append(all, PluginDiagnostics(b, []*sdk.ConfigError{
		{Attribute: "password", Message: "password " + secret + " is too weak"},
		{Message: "AUTH " + secret + " failed, token " + secretTTL},
	})...)
	require.Len(t, all, 3)

	var snippets strings.Builder
	require.NoError(t, WriteDiagnostics(&snippets, f.Sources(), all))
	for _, text := range []string{FormatDiagnostics(all), snippets.String()} {
		require.NotContains(t, text, secret)
		require.NotContains(t, text, secretTTL)
	}
	require.Contains(t, FormatDiagnostics(all), "taskiq.hcl:5:17: Invalid plugin configuration")
	require.Contains(t, FormatDiagnostics(all), "password (sensitive) is too weak")
	require.Contains(t, snippets.String(), `password  = ****************`, "the snippet keeps the line, blanked")
	source := string(f.Sources()["taskiq.hcl"].Bytes)
	require.NotContains(t, source, secret)
	require.Contains(t, source, `url       = "redis://x"`, "non-sensitive values stay visible")
	require.Contains(t, source, `password  = ****************`+"\n", "offsets are kept")
}
