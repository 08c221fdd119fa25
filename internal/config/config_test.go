package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// fakeEnv is an environment for parse, so tests never touch os.Environ and
// can run in parallel.
func fakeEnv(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// mustParse parses src as taskiq.hcl and fails on any error diagnostic.
func mustParse(t *testing.T, src string, env map[string]string) *File {
	t.Helper()
	f, diags := parse([]byte(src), "taskiq.hcl", fakeEnv(env))
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
	return f
}

func TestHostDiagnostics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want []string // FormatDiagnostics lines, exactly
	}{
		{
			name: "typo in a top-level attribute",
			src:  "plugin_dri = \"./bin\"\n",
			want: []string{`taskiq.hcl:1:1: Unsupported argument; An argument named "plugin_dri" is not expected here. Did you mean "plugin_dir"?`},
		},
		{
			name: "typo in a block type",
			src:  "workr {\n}\n",
			want: []string{`taskiq.hcl:1:1: Unsupported block type; Blocks of type "workr" are not expected here. Did you mean "worker"?`},
		},
		{
			name: "typo in a worker attribute",
			src:  "worker {\n  max_asyn_tasks = 10\n}\n",
			want: []string{`taskiq.hcl:2:3: Unsupported argument; An argument named "max_asyn_tasks" is not expected here. Did you mean "max_async_tasks"?`},
		},
		{
			name: "typo in a plugin block attribute",
			src:  "broker \"default\" {\n  plugin = \"x\"\n  sha265 = \"\"\n}\n",
			want: []string{`taskiq.hcl:3:3: Unsupported argument; An argument named "sha265" is not expected here. Did you mean "sha256"?`},
		},
		{
			name: "wrong type",
			src:  "worker {\n  workers = \"two\"\n}\n",
			want: []string{`taskiq.hcl:2:13: Incorrect attribute value type; Inappropriate value for attribute "workers": a number is required.`},
		},
		{
			name: "fraction where a whole number is needed",
			src:  "worker {\n  workers = 1.5\n}\n",
			want: []string{`taskiq.hcl:2:13: Incorrect attribute value type; Inappropriate value for attribute "workers": value must be a whole number, between -9223372036854775808 and 9223372036854775807.`},
		},
		{
			name: "too few workers",
			src:  "worker {\n  workers = 0\n}\n",
			want: []string{`taskiq.hcl:2:13: Invalid workers; workers must be at least 1 (the number of worker processes).`},
		},
		{
			name: "bad ack_type",
			src:  "worker {\n  ack_type = \"when_save\"\n}\n",
			want: []string{`taskiq.hcl:2:14: Invalid ack_type; "when_save" is not an ack type; use one of when_received, when_executed, when_saved, manual. Did you mean "when_saved"?`},
		},
		{
			name: "bad duration",
			src:  "worker {\n  shutdown_timeout = \"30\"\n}\n",
			want: []string{`taskiq.hcl:2:22: Invalid duration; shutdown_timeout: "30" is not a duration; write a number with a unit, such as "30s", "5m" or "1h30m".`},
		},
		{
			name: "negative duration",
			src:  "worker {\n  lease = \"-1s\"\n}\n",
			want: []string{`taskiq.hcl:2:11: Invalid duration; lease: "-1s" is negative; durations must be zero or more.`},
		},
		{
			name: "missing plugin attribute",
			src:  "broker \"default\" {\n  config {}\n}\n",
			want: []string{`taskiq.hcl:1:18: Missing required argument; The argument "plugin" is required, but no definition was found.`},
		},
		{
			name: "missing label",
			src:  "middleware {\n  plugin = \"x\"\n}\n",
			want: []string{`taskiq.hcl:1:12: Missing name for middleware; All middleware blocks must have 1 labels (name).`},
		},
		{
			name: "empty label",
			src:  "broker \"\" {\n  plugin = \"x\"\n}\n",
			want: []string{`taskiq.hcl:1:8: Invalid broker name; The label of a broker block names it and must not be empty, e.g. broker "default" {}.`},
		},
		{
			name: "duplicate labels",
			src:  "broker \"a\" {\n  plugin = \"x\"\n}\n\nbroker \"a\" {\n  plugin = \"y\"\n}\n",
			want: []string{`taskiq.hcl:5:1: Duplicate broker block; A broker named "a" is already defined at taskiq.hcl:1:1. Labels must be unique per block type; rename one of them.`},
		},
		{
			name: "same label in different kinds is fine",
			src:  "broker \"default\" {\n  plugin = \"x\"\n}\nresult_backend \"default\" {\n  plugin = \"x\"\n}\n",
		},
		{
			name: "two result backends",
			src:  "result_backend \"a\" {\n  plugin = \"x\"\n}\nresult_backend \"b\" {\n  plugin = \"x\"\n}\n",
			want: []string{`taskiq.hcl:4:1: Too many result_backend blocks; Only one result_backend block is supported; one is already defined at taskiq.hcl:1:1. Remove one of them.`},
		},
		{
			name: "duplicate worker block",
			src:  "worker {}\nworker {}\n",
			want: []string{`taskiq.hcl:2:1: Duplicate worker block; A worker block is already defined at taskiq.hcl:1:1; merge the two blocks into one.`},
		},
		{
			name: "duplicate config block",
			src:  "broker \"a\" {\n  plugin = \"x\"\n  config {}\n  config {}\n}\n",
			want: []string{`taskiq.hcl:4:3: Duplicate config block; A broker block takes one config block, and one is already defined at taskiq.hcl:3:3; merge the two.`},
		},
		{
			name: "unknown default_broker",
			src:  "broker \"redis\" {\n  plugin = \"x\"\n}\nclient {\n  default_broker = \"rediss\"\n}\n",
			want: []string{`taskiq.hcl:5:20: Unknown default_broker; There is no broker "rediss"; the brokers defined are "redis". Did you mean "redis"?`},
		},
		{
			name: "default_broker without brokers",
			src:  "client {\n  default_broker = \"a\"\n}\n",
			want: []string{`taskiq.hcl:2:20: Unknown default_broker; There is no broker "a" in this file; define one with broker "a" {}.`},
		},
		{
			name: "invalid sha256",
			src:  "broker \"a\" {\n  plugin = \"x\"\n  sha256 = \"abc\"\n}\n",
			want: []string{"taskiq.hcl:3:12: Invalid sha256; sha256 must be the 64 hex digits of the binary's SHA-256, as printed by `sha256sum x`."},
		},
		{
			name: "unset env var points at the call",
			src:  "broker \"a\" {\n  plugin = env(\"TASKIQ_TEST_PLUGIN\")\n}\n",
			want: []string{`taskiq.hcl:2:12: Environment variable not set; env("TASKIQ_TEST_PLUGIN") has no default and TASKIQ_TEST_PLUGIN is not set. Export TASKIQ_TEST_PLUGIN, or give a default: env("TASKIQ_TEST_PLUGIN", "value").`},
		},
		{
			name: "env with too many arguments",
			src:  "plugin_dir = env(\"A\", \"b\", \"c\")\n",
			want: []string{`taskiq.hcl:1:29: Invalid function argument; Invalid value for "default" parameter: env takes a variable name and at most one default.`},
		},
		{
			name: "diagnostics come in file order",
			src:  "zzz = 1\nworker {\n  aaa = 1\n  bbb = 2\n}\nyyy = 2\n",
			want: []string{
				`taskiq.hcl:1:1: Unsupported argument; An argument named "zzz" is not expected here.`,
				`taskiq.hcl:3:3: Unsupported argument; An argument named "aaa" is not expected here.`,
				`taskiq.hcl:4:3: Unsupported argument; An argument named "bbb" is not expected here.`,
				`taskiq.hcl:6:1: Unsupported argument; An argument named "yyy" is not expected here.`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, diags := parse([]byte(tt.src), "taskiq.hcl", fakeEnv(tt.env))
			var got []string
			if len(diags) > 0 {
				got = strings.Split(FormatDiagnostics(diags), "\n")
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestUnsetEnvRangeIsTheCall(t *testing.T) {
	t.Parallel()
	src := "broker \"a\" {\n  plugin = \"x\"\n  env = { URL = env(\"TASKIQ_TEST_URL\") }\n}\n"
	_, diags := parse([]byte(src), "taskiq.hcl", fakeEnv(nil))
	require.Len(t, diags, 1)
	r := diags[0].Subject
	require.Equal(t, "Environment variable not set", diags[0].Summary)
	require.Equal(t, 3, r.Start.Line)
	require.Equal(t, 17, r.Start.Column)
	require.Equal(t, `env("TASKIQ_TEST_URL")`, string(r.SliceBytes([]byte(src))))
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	f := mustParse(t, "", nil)
	dir, err := filepath.Abs(".")
	require.NoError(t, err)

	require.Equal(t, "taskiq.hcl", f.Path)
	require.Equal(t, filepath.Join(dir, "bin"), f.PluginDir)
	require.Empty(t, f.Brokers)
	require.Empty(t, f.ResultBackends)
	require.Empty(t, f.Middlewares)
	require.Equal(t, Worker{
		Workers:         2,
		MaxAsyncTasks:   100,
		AckType:         "when_saved",
		ShutdownTimeout: 30 * time.Second,
	}, f.Worker)
	require.Equal(t, Client{MaxMessageSize: 16 << 20}, f.Client)
	require.Equal(t, Security{}, f.Security)
}

func TestDecodeEverything(t *testing.T) {
	t.Parallel()
	src := `
plugin_dir = "plugins"

broker "fast" {
  plugin = "taskiq-inmemory"
  sha256 = "ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789"
  env    = { GOGC = env("TASKIQ_TEST_GOGC", "100"), MODE = env("TASKIQ_TEST_MODE") }
}
broker "slow" {
  plugin = "./vendor/taskiq-redis"
  config {
    queue = "slow"
  }
}
result_backend "default" { plugin = "taskiq-inmemory" }
middleware "retry" { plugin = "taskiq-retry-middleware" }
middleware "audit" { plugin = "/opt/taskiq/audit" }

worker {
  workers            = 4
  max_async_tasks    = 10
  max_prefetch       = 5
  ack_type           = "when_executed"
  shutdown_timeout   = "1m"
  wait_tasks_timeout = "20s"
  lease              = "45s"
  queues             = ["a", "b"]
}
client {
  default_broker   = "slow"
  max_message_size = 1024
}
security {
  auto_mtls = true
}
`
	f, diags := parse([]byte(src), "/srv/app/taskiq.hcl", fakeEnv(map[string]string{"TASKIQ_TEST_MODE": "x"}))
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))

	require.Equal(t, "/srv/app/plugins", f.PluginDir)
	require.Len(t, f.Brokers, 2)
	fast, slow := f.Brokers[0], f.Brokers[1]
	require.Equal(t, sdk.KindBroker, fast.Kind)
	require.Equal(t, "fast", fast.Name)
	require.Equal(t, "taskiq-inmemory", fast.Plugin)
	require.Equal(t, "/srv/app/plugins/taskiq-inmemory", fast.Path)
	require.Equal(t, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789", fast.SHA256)
	require.Equal(t, map[string]string{"GOGC": "100", "MODE": "x"}, fast.Env)
	require.Equal(t, 6, fast.SHA256Range.Start.Line)
	require.Equal(t, 5, fast.PluginRange.Start.Line)
	require.Equal(t, 4, fast.DeclRange.Start.Line)

	require.Equal(t, "/srv/app/vendor/taskiq-redis", slow.Path)
	require.Equal(t, slow.DeclRange, slow.SHA256Range, "no pin: SHA256Range is the block")
	attrs, d := slow.Config.JustAttributes()
	require.False(t, d.HasErrors())
	require.Contains(t, attrs, "queue")

	require.Len(t, f.ResultBackends, 1)
	require.Equal(t, sdk.KindResultBackend, f.ResultBackends[0].Kind)
	require.Equal(t, []string{"retry", "audit"}, []string{f.Middlewares[0].Name, f.Middlewares[1].Name})
	require.Equal(t, sdk.KindMiddleware, f.Middlewares[0].Kind)
	require.Equal(t, "/srv/app/plugins/taskiq-retry-middleware", f.Middlewares[0].Path)
	require.Equal(t, "/opt/taskiq/audit", f.Middlewares[1].Path)
	require.Len(t, f.Blocks(), 5)

	require.Equal(t, Worker{
		Workers:          4,
		MaxAsyncTasks:    10,
		MaxPrefetch:      5,
		AckType:          AckWhenExecuted,
		ShutdownTimeout:  time.Minute,
		WaitTasksTimeout: 20 * time.Second,
		Lease:            45 * time.Second,
		Queues:           []string{"a", "b"},
	}, f.Worker)
	require.Equal(t, Client{DefaultBroker: "slow", MaxMessageSize: 1024}, f.Client)
	require.True(t, f.Security.AutoMTLS)
}

func TestDefaultBrokerIsTheFirst(t *testing.T) {
	t.Parallel()
	f := mustParse(t, "broker \"b\" { plugin = \"x\" }\nbroker \"a\" { plugin = \"x\" }\n", nil)
	require.Equal(t, "b", f.Client.DefaultBroker)
}

func TestPathResolution(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pluginDir, plugin, wantDir, wantPath string
	}{
		{"bare name in default plugin_dir", "", "taskiq-redis", "/srv/app/bin", "/srv/app/bin/taskiq-redis"},
		{"bare name in relative plugin_dir", "../shared/bin", "taskiq-redis", "/srv/shared/bin", "/srv/shared/bin/taskiq-redis"},
		{"bare name in absolute plugin_dir", "/opt/plugins", "taskiq-redis", "/opt/plugins", "/opt/plugins/taskiq-redis"},
		{"./path is relative to the file, not plugin_dir", "/opt/plugins", "./taskiq-redis", "/opt/plugins", "/srv/app/taskiq-redis"},
		{"nested relative path", "", "build/out/taskiq-redis", "/srv/app/bin", "/srv/app/build/out/taskiq-redis"},
		{"parent relative path", "", "../other/taskiq-redis", "/srv/app/bin", "/srv/other/taskiq-redis"},
		{"absolute path", "", "/usr/local/bin/taskiq-redis", "/srv/app/bin", "/usr/local/bin/taskiq-redis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := "broker \"a\" {\n  plugin = \"" + tt.plugin + "\"\n}\n"
			if tt.pluginDir != "" {
				src = "plugin_dir = \"" + tt.pluginDir + "\"\n" + src
			}
			f, diags := parse([]byte(src), "/srv/app/taskiq.hcl", fakeEnv(nil))
			require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
			require.Equal(t, tt.wantDir, f.PluginDir)
			require.Equal(t, tt.plugin, f.Brokers[0].Plugin)
			require.Equal(t, tt.wantPath, f.Brokers[0].Path)
		})
	}
}

func TestEnvFunction(t *testing.T) {
	t.Parallel()
	src := `plugin_dir = env("TASKIQ_TEST_DIR", "/default/bin")` + "\n" +
		`client { default_broker = env("TASKIQ_TEST_EMPTY", "unused") }` + "\n"

	t.Run("default used when unset", func(t *testing.T) {
		t.Parallel()
		f, _ := parse([]byte(src), "/srv/taskiq.hcl", fakeEnv(nil))
		require.Equal(t, "/default/bin", f.PluginDir)
	})
	t.Run("value wins over default; empty counts as set", func(t *testing.T) {
		t.Parallel()
		f, diags := parse([]byte(src), "/srv/taskiq.hcl", fakeEnv(map[string]string{
			"TASKIQ_TEST_DIR":   "/from/env",
			"TASKIQ_TEST_EMPTY": "",
		}))
		require.Equal(t, "/from/env", f.PluginDir)
		// "" is set, so default_broker = "" which names no broker: the
		// diagnostic proves the default was not used.
		require.Contains(t, FormatDiagnostics(diags), `There is no broker ""`)
	})
}

func TestFileFunction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "token.txt"), []byte("tok-123"), 0o600))
	src := "broker \"a\" {\n  plugin = \"x\"\n  env = { TOKEN = file(\"token.txt\") }\n}\n"
	f, diags := parse([]byte(src), filepath.Join(dir, "taskiq.hcl"), fakeEnv(nil))
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
	require.Equal(t, "tok-123", f.Brokers[0].Env["TOKEN"])

	src = "broker \"a\" {\n  plugin = \"x\"\n  env = { TOKEN = file(\"missing.txt\") }\n}\n"
	_, diags = parse([]byte(src), filepath.Join(dir, "taskiq.hcl"), fakeEnv(nil))
	require.True(t, diags.HasErrors())
	require.Contains(t, FormatDiagnostics(diags), "taskiq.hcl:3:19: Error in function call")
	require.Contains(t, FormatDiagnostics(diags), filepath.Join(dir, "missing.txt"))
}

func TestSyntaxErrorKeepsSources(t *testing.T) {
	t.Parallel()
	f, diags := parse([]byte("worker {\n  workers = \n}\n"), "taskiq.hcl", fakeEnv(nil))
	require.True(t, diags.HasErrors())
	require.NotNil(t, f)
	require.Contains(t, f.Sources(), "taskiq.hcl")
	require.True(t, strings.HasPrefix(FormatDiagnostics(diags), "taskiq.hcl:2:"), FormatDiagnostics(diags))
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "taskiq.hcl")
	require.NoError(t, os.WriteFile(path, []byte("broker \"a\" {\n  plugin = \"x\"\n}\n"), 0o600))
	f, diags := Load(path)
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
	require.Equal(t, path, f.Path)
	require.Equal(t, filepath.Join(dir, "bin", "x"), f.Brokers[0].Path)

	_, diags = Load(filepath.Join(dir, "nope.hcl"))
	require.True(t, diags.HasErrors())
	require.Contains(t, FormatDiagnostics(diags), "Cannot read configuration file")
	require.Contains(t, FormatDiagnostics(diags), "--config")
}

func TestWriteDiagnosticsShowsSnippet(t *testing.T) {
	t.Parallel()
	f, diags := parse([]byte("worker {\n  max_asyn_tasks = 10\n}\n"), "taskiq.hcl", fakeEnv(nil))
	var sb strings.Builder
	require.NoError(t, WriteDiagnostics(&sb, f.Sources(), diags))
	out := sb.String()
	require.Contains(t, out, "Error: Unsupported argument")
	require.Contains(t, out, "on taskiq.hcl line 2, in worker:")
	require.Contains(t, out, "   2:   max_asyn_tasks = 10")
	require.Contains(t, out, `Did you mean "max_async_tasks"?`)
}

func TestFormatDiagnosticsWithoutRange(t *testing.T) {
	t.Parallel()
	got := FormatDiagnostics(hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "No range", Detail: "line one\nline two"},
		{Severity: hcl.DiagWarning, Summary: "Careful", Subject: &hcl.Range{Filename: "f.hcl", Start: hcl.Pos{Line: 2, Column: 3}}},
	})
	require.Equal(t, "No range; line one line two\nf.hcl:2:3: warning: Careful", got)
}

func TestExampleFileParses(t *testing.T) {
	t.Parallel()
	f, diags := Load("../../taskiq.hcl.example")
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
	require.Len(t, f.Brokers, 1)
	require.Len(t, f.ResultBackends, 1)
	require.Equal(t, "default", f.Client.DefaultBroker)

	// The plugin configs match the in-memory plugin's schemas.
	brokerSchema := sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "queue", Type: sdk.TypeString, Default: "taskiq"},
		{Name: "lease", Type: sdk.TypeDuration, Default: "30s"},
		{Name: "max_attempts", Type: sdk.TypeNumber, Default: 0},
	}}
	resultSchema := sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "result_ttl", Type: sdk.TypeDuration, Default: "0s"},
		{Name: "keep_results", Type: sdk.TypeBool, Default: true},
	}}
	raw, diags := DecodePluginConfig(f.Brokers[0], brokerSchema)
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
	require.JSONEq(t, `{"queue":"taskiq","lease":"30s","max_attempts":0}`, string(raw))
	raw, diags = DecodePluginConfig(f.ResultBackends[0], resultSchema)
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
	require.JSONEq(t, `{"result_ttl":"0s","keep_results":true}`, string(raw))
}

func TestFileFuncRefusesNonRegularFiles(t *testing.T) {
	t.Parallel()
	_, diags := Parse([]byte(`client {
  max_message_size = file("/dev/zero")
}
`), filepath.Join(t.TempDir(), "taskiq.hcl"))
	require.True(t, diags.HasErrors())
	require.Contains(t, FormatDiagnostics(diags), "not a regular file")
}
