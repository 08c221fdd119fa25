package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// fuzzSchema has one attribute of every type, a required one and a
// sensitive one, so fuzzed config blocks exercise the whole plugin decoder.
var fuzzSchema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "url", Type: sdk.TypeString, Default: "redis://127.0.0.1:6379/0"},
	{Name: "queue", Type: sdk.TypeString, Required: true},
	{Name: "count", Type: sdk.TypeNumber, Default: 100},
	{Name: "enabled", Type: sdk.TypeBool, Default: true},
	{Name: "lease", Type: sdk.TypeDuration, Default: "30s"},
	{Name: "addrs", Type: sdk.TypeStringList, Default: []string{}},
	{Name: "tags", Type: sdk.TypeStringMap},
	{Name: "password", Type: sdk.TypeString, Sensitive: true},
}}

// fuzzSecret is the value the fuzz environment gives env("SECRET"): it must
// never show in a diagnostic, whatever the file looks like.
const fuzzSecret = "fuzz-s3cr3t-value"

// FuzzParse parses arbitrary taskiq.hcl bytes and decodes every plugin
// block's config against fuzzSchema. Nothing may panic; every diagnostic
// must point into the file with a valid range; env("SECRET") assigned to the
// sensitive attribute never appears in any diagnostic text.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "..", "taskiq.hcl.example"))
	if err != nil {
		f.Fatalf("read the example file: %v", err)
	}
	f.Add(example)
	for _, seed := range []string{
		"",
		"plugin_dir = \"./bin\"\nbroker \"default\" {\n  plugin = \"x\"\n  config {\n    queue = \"q\"\n    password = env(\"SECRET\")\n  }\n}\n",
		"broker \"default\" {\n  plugin = \"x\"\n  config {\n    queu = \"typo\"\n    count = \"many\"\n    lease = \"soon\"\n    password = [\"x\"]\n  }\n}\n",
		"broker \"a\" {\n  plugin = \"x\"\n}\nbroker \"a\" {\n  plugin = \"y\"\n}\nresult_backend \"r\" {}\nresult_backend \"s\" {}\n",
		"worker {\n  workers = -1\n  ack_type = \"sometimes\"\n  lease = \"1x\"\n  queues = [1, {}]\n}\n",
		"client {\n  max_message_size = 1e100\n  default_broker = \"missing\"\n}\nsecurity { auto_mtls = \"yes\" }\n",
		"broker \"x\" {\n  plugin = env(\"UNSET_VARIABLE\")\n  env = { A = 1 }\n  sha256 = \"zz\"\n}\n",
		"broker \"x\" { plugin = file(\"does-not-exist\") }",
		"broker {\n",
		"broker \"x\" {\n  config {\n    queue = \"${\"\n",
		"unknown_block \"x\" {}\nunknown_attr = 1\n",
		"broker \"x\" {\n  plugin = \"p\"\n  config {\n    queue = \"q\"\n    nested { a = 1 }\n  }\n}\n",
		"\xff\xfe\x00 not hcl",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		const filename = "fuzzdir/taskiq.hcl"
		lookupEnv := fakeEnv(map[string]string{"SECRET": fuzzSecret, "TASKIQ_REDIS_URL": "redis://127.0.0.1:6379/0"})
		file, diags := parse(src, filename, lookupEnv)
		checkDiags(t, src, filename, diags)
		if file == nil {
			t.Fatal("Parse returned no File")
		}
		if diags.HasErrors() {
			return
		}
		for _, b := range file.Blocks() {
			raw, diags := DecodePluginConfig(b, fuzzSchema)
			checkDiags(t, src, filename, diags)
			if !diags.HasErrors() && raw == nil {
				t.Fatal("DecodePluginConfig returned neither a config nor an error")
			}
			for _, d := range diags {
				if strings.Contains(d.Summary+d.Detail, fuzzSecret) {
					t.Fatalf("a diagnostic shows the sensitive value: %s: %s", d.Summary, d.Detail)
				}
			}
			// A plugin that echoes the secret back has it scrubbed.
			pd := PluginDiagnostics(b, []*sdk.ConfigError{{Attribute: "password", Message: "rejected " + fuzzSecret}})
			checkDiags(t, src, filename, pd)
			var decoded map[string]any
			_ = json.Unmarshal(raw, &decoded)
			if decoded["password"] == fuzzSecret && strings.Contains(FormatDiagnostics(pd), fuzzSecret) {
				t.Fatalf("a plugin diagnostic shows the sensitive value: %s", FormatDiagnostics(pd))
			}
		}
		_ = file.Sources()
	})
}

// checkDiags requires every diagnostic to have a summary and, when it has a
// subject, a range inside the parsed file.
func checkDiags(t *testing.T, src []byte, filename string, diags hcl.Diagnostics) {
	t.Helper()
	for _, d := range diags {
		if d.Summary == "" {
			t.Fatalf("diagnostic without a summary: %+v", d)
		}
		if d.Severity == hcl.DiagError && d.Subject == nil {
			t.Fatalf("error diagnostic without a position: %s: %s", d.Summary, d.Detail)
		}
		for _, r := range []*hcl.Range{d.Subject, d.Context} {
			if r == nil {
				continue
			}
			if r.Filename != filename {
				t.Fatalf("diagnostic %q points at file %q, want %q", d.Summary, r.Filename, filename)
			}
			if r.Start.Line < 1 || r.Start.Column < 1 || r.End.Line < r.Start.Line ||
				r.Start.Byte < 0 || r.Start.Byte > r.End.Byte || r.End.Byte > len(src) {
				t.Fatalf("diagnostic %q has an invalid range %s (%d-%d) in a %d-byte file",
					d.Summary, r, r.Start.Byte, r.End.Byte, len(src))
			}
		}
		if !utf8.ValidString(FormatDiagnostics(hcl.Diagnostics{d})) && utf8.Valid(src) {
			t.Fatalf("diagnostic text of a valid UTF-8 file is not valid UTF-8: %q", FormatDiagnostics(hcl.Diagnostics{d}))
		}
	}
}
