package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// The snippets of `taskiq config validate -v` come from the file loaded a
// second time, which never went through DecodePluginConfig: the diagnostics
// themselves must carry what to hide. Every error form on the line of a
// sensitive attribute is covered, and a trailing comment goes with it.
func TestSnippetsOfAReloadedFileHideSensitiveValues(t *testing.T) {
	t.Parallel()
	for name, value := range map[string]string{
		"wrong type":       `["hunter2-list"]`,
		"unknown function": `"hunter2-${hunter2fn()}"`,
		"comment":          `["x"] # was "hunter2-old"`,
		"multi-line list":  "[\n      \"hunter2-a\",\n      \"hunter2-b\",\n    ]",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src := "broker \"default\" {\n  plugin = \"taskiq-redis\"\n  config {\n    url      = \"redis://x\"\n    password = " + value + "\n  }\n}\n"
			_, b := brokerBlock(t, src, nil)
			_, diags := DecodePluginConfig(b, redisSchema)
			require.True(t, diags.HasErrors())
			diags = append(diags, PluginDiagnostics(b, []*sdk.ConfigError{{Attribute: "password", Message: "bad"}})...)

			again := mustParse(t, src, nil)
			var out strings.Builder
			require.NoError(t, WriteDiagnostics(&out, again.Sources(), diags))
			text := out.String() + FormatDiagnostics(diags)
			require.NotContains(t, text, "hunter2")
			require.Contains(t, out.String(), "    password = *")
		})
	}
}

// A file with syntax errors has no decoded plugin block, so nothing says
// which value is sensitive: its snippets blank every attribute value and
// keep the structure.
func TestSnippetsOfAnUnparsedFileHideEveryValue(t *testing.T) {
	t.Parallel()
	src := "broker \"default\" {\n  plugin = \"taskiq-redis\"\n  config {\n    token = hunter2 x\n    password = \"hunter2-${interp\"\n  }\n}\n"
	f, diags := Parse([]byte(src), "taskiq.hcl")
	require.True(t, diags.HasErrors())
	var out strings.Builder
	require.NoError(t, WriteDiagnostics(&out, f.Sources(), diags))
	require.NotContains(t, out.String(), "hunter2")
	require.NotContains(t, out.String(), "interp")
	require.Contains(t, out.String(), "    token = ******* *")
	require.Contains(t, string(f.Sources()["taskiq.hcl"].Bytes), "broker \"default\" {\n  plugin = \"************\"\n")
}

// A plugin's message quoting a URL with its password (a library's error
// passed on) loses the password, in the compact and the snippet forms.
func TestPluginDiagnosticsRedactURLPasswords(t *testing.T) {
	t.Parallel()
	f, b := brokerBlock(t, "broker \"default\" {\n  plugin = \"taskiq-redis\"\n  config {\n    url = \"redis://x\"\n  }\n}\n", nil)
	_, diags := DecodePluginConfig(b, redisSchema)
	require.False(t, diags.HasErrors())
	pd := PluginDiagnostics(b, []*sdk.ConfigError{{Attribute: "url", Message: `parse "redis://:hunter2@h:x/0": invalid port`}})
	var out strings.Builder
	require.NoError(t, WriteDiagnostics(&out, f.Sources(), pd))
	for _, text := range []string{out.String(), FormatDiagnostics(pd)} {
		require.NotContains(t, text, "hunter2")
		require.Contains(t, text, "redis://:xxxxx@h:x/0")
	}
}
