package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	pluginOnce sync.Once
	pluginDir  string
	pluginErr  error
)

// builtPlugins builds this repository's plugin binaries once per test run.
func builtPlugins(t *testing.T) string {
	t.Helper()
	pluginOnce.Do(func() {
		pluginDir, pluginErr = os.MkdirTemp("", "taskiq-cli-plugins")
		if pluginErr != nil {
			return
		}
		for name, pkg := range map[string]string{
			"taskiq-inmemory":         "../../plugins/inmemory/cmd/taskiq-inmemory",
			"taskiq-retry-middleware": "../../plugins/retry-middleware/cmd/taskiq-retry-middleware",
			"taskiq-redis":            "../../plugins/redis/cmd/taskiq-redis",
		} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(pluginDir, name), pkg).CombinedOutput()
			if err != nil {
				pluginErr = &buildError{name, string(out)}
				return
			}
		}
	})
	require.NoError(t, pluginErr)
	return pluginDir
}

type buildError struct{ name, out string }

func (e *buildError) Error() string { return "build " + e.name + ": " + e.out }

func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "taskiq.hcl")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func TestConfigValidateAcceptsAValidFile(t *testing.T) {
	dir := builtPlugins(t)
	path := writeConfig(t, `plugin_dir = "`+dir+`"
broker "default" {
  plugin = "taskiq-inmemory"
  config { queue = "q" }
}
result_backend "default" { plugin = "taskiq-inmemory" }
middleware "retry" {
  plugin = "taskiq-retry-middleware"
  config { max_retries = 3 }
}
`)
	code, out, errOut := runCLI("config", "validate", "-c", path)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "configuration is valid")
}

func TestConfigValidateReportsEveryErrorWithPosition(t *testing.T) {
	dir := builtPlugins(t)
	path := writeConfig(t, `plugin_dir = "`+dir+`"
broker "default" {
  plugin = "taskiq-inmemory"
  config {
    queu  = "q"
    lease = true
  }
}
result_backend "default" {
  plugin = "taskiq-nowhere"
}
middleware "retry" {
  plugin = "taskiq-retry-middleware"
  sha256 = "`+strings.Repeat("ab", 32)+`"
}
worker {
  ack_type = "sometimes"
  max_async_task = 1
}
client {
  max_message_size = env("TASKIQ_TEST_SURELY_UNSET_VARIABLE")
}
`)
	code, _, errOut := runCLI("config", "validate", "-c", path)
	require.Equal(t, 1, code)
	for _, want := range []string{
		"taskiq.hcl:5", `Did you mean "queue"?`, // typo in a plugin attribute
		"taskiq.hcl:6",                                                    // wrong type in a plugin attribute
		"taskiq.hcl:10", "taskiq-nowhere", "build the plugin binary into", // missing binary: where and how to build
		"taskiq.hcl:14", "checksum", // sha256 pin mismatch
		"taskiq.hcl:17", "sometimes", // bad host value
		"taskiq.hcl:18", `Did you mean "max_async_tasks"?`, // typo in a host attribute
		"taskiq.hcl:21", "TASKIQ_TEST_SURELY_UNSET_VARIABLE", // unset env var
	} {
		require.Contains(t, errOut, want)
	}
}

func TestPluginsInfo(t *testing.T) {
	dir := builtPlugins(t)
	code, out, errOut := runCLI("plugins", "info", filepath.Join(dir, "taskiq-redis"))
	require.Equal(t, 0, code, errOut)
	for _, want := range []string{"name:     taskiq-redis", "role: broker", "role: result_backend", "capabilities:", "url", "password",
		`string (one of "stream", "list", "pubsub")`, "number (integer, 1..)"} {
		require.Contains(t, out, want)
	}

	code, out, errOut = runCLI("plugins", "info", "--json", filepath.Join(dir, "taskiq-retry-middleware"))
	require.Equal(t, 0, code, errOut)
	var info struct {
		Name  string `json:"name"`
		Roles []struct {
			Kind   string   `json:"kind"`
			Hooks  []string `json:"hooks"`
			Config []struct {
				Name    string   `json:"name"`
				Integer bool     `json:"integer"`
				Min     *float64 `json:"min"`
			} `json:"config"`
		} `json:"roles"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &info))
	require.Equal(t, "taskiq-retry-middleware", info.Name)
	require.Equal(t, "middleware", info.Roles[0].Kind)
	require.Equal(t, []string{"on_error"}, info.Roles[0].Hooks)
	require.NotEmpty(t, info.Roles[0].Config)
	var maxRetries bool
	for _, a := range info.Roles[0].Config {
		if a.Name == "max_retries" {
			maxRetries = true
			require.True(t, a.Integer)
			require.NotNil(t, a.Min)
			require.EqualValues(t, 1, *a.Min)
		}
	}
	require.True(t, maxRetries, "max_retries is in the schema")
}

func TestPluginsInfoOnMissingBinary(t *testing.T) {
	code, _, errOut := runCLI("plugins", "info", "/nonexistent/taskiq-x")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "/nonexistent/taskiq-x")
}

// TestExampleConfigIsValid validates taskiq.hcl.example against the real
// plugins' schemas, with its commented-out Redis and retry blocks enabled.
func TestExampleConfigIsValid(t *testing.T) {
	dir := builtPlugins(t)
	src, err := os.ReadFile("../../taskiq.hcl.example")
	require.NoError(t, err)
	text := strings.Replace(string(src), `plugin_dir = "./bin"`, `plugin_dir = "`+dir+`"`, 1)
	code, out, errOut := runCLI("config", "validate", "-c", writeConfig(t, text))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "configuration is valid")

	enabled := uncommentBlocks(text)
	require.Contains(t, enabled, `plugin = "taskiq-redis"`)
	code, _, errOut = runCLI("config", "validate", "-c", writeConfig(t, enabled))
	require.Equal(t, 0, code, errOut)
}

// uncommentBlocks turns the example's commented-out blocks (from a line
// "# broker|result_backend|middleware ... {" to "# }") into configuration,
// renaming a second "default" broker so the labels stay unique.
func uncommentBlocks(s string) string {
	lines := strings.Split(s, "\n")
	in := false
	for i, l := range lines {
		for _, kind := range []string{"broker ", "result_backend ", "middleware "} {
			if strings.HasPrefix(l, "# "+kind) && strings.HasSuffix(l, "{") {
				in = true
			}
		}
		if !in {
			continue
		}
		lines[i] = strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
		if lines[i] == "}" {
			in = false
		}
	}
	out := strings.Join(lines, "\n")
	return strings.Replace(out, "broker \"default\" {\n  plugin = \"taskiq-redis\"", "broker \"redis\" {\n  plugin = \"taskiq-redis\"", 1)
}
