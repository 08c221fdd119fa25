package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTelemetryBlock(t *testing.T) {
	t.Parallel()
	f := mustParse(t, `
telemetry {
  metrics_addr         = "127.0.0.1:${env("PORT")}"
  tracing              = true
  otlp_endpoint        = "http://127.0.0.1:4318"
  service_name         = "billing"
  queue_stats_interval = "30s"
  sample_ratio         = 0.25
}
`, map[string]string{"PORT": "9464"})
	ratio := 0.25
	require.Equal(t, Telemetry{MetricsAddr: "127.0.0.1:9464", Tracing: true, OTLPEndpoint: "http://127.0.0.1:4318",
		ServiceName: "billing", QueueStatsInterval: 30 * time.Second, SampleRatio: &ratio}, f.Telemetry)
	require.Equal(t, 0.0, *mustParse(t, "telemetry {\n  sample_ratio = 0\n}\n", nil).Telemetry.SampleRatio, "0 samples no new trace, and is not unset")

	require.Equal(t, Telemetry{ServiceName: DefaultServiceName}, mustParse(t, "", nil).Telemetry)
}

func TestTelemetryDiagnostics(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]string{
		"telemetry {\n  metrics_addr = \"9464\"\n}\n":            `taskiq.hcl:2:18: Invalid metrics_addr; metrics_addr is host:port, e.g. "127.0.0.1:9464": address 9464: missing port in address.`,
		"telemetry {\n  otlp_endpoint = \"127.0.0.1:4318\"\n}\n": `taskiq.hcl:2:19: Invalid otlp_endpoint; otlp_endpoint is the URL of an OTLP/HTTP collector, e.g. "http://127.0.0.1:4318".`,
		"telemetry {\n  tracin = true\n}\n":                      `taskiq.hcl:2:3: Unsupported argument; An argument named "tracin" is not expected here. Did you mean "tracing"?`,
		"telemetry {\n}\ntelemetry {\n}\n":                       `taskiq.hcl:3:1: Duplicate telemetry block; A telemetry block is already defined at taskiq.hcl:1:1; merge the two blocks into one.`,
		"telemetry {\n  queue_stats_interval = \"soon\"\n}\n":    `taskiq.hcl:2:26: Invalid duration;`,
		"telemetry {\n  sample_ratio = 1.5\n}\n":                 `taskiq.hcl:2:18: Invalid sample_ratio; sample_ratio is the share of traces sampled, from 0 to 1 (0.1: one in ten); got 1.5.`,
		"telemetry {\n  sample_ratio = \"all\"\n}\n":             `taskiq.hcl:2:18: Incorrect attribute value type;`,
	} {
		_, diags := parse([]byte(src), "taskiq.hcl", fakeEnv(nil))
		require.True(t, diags.HasErrors(), src)
		require.Contains(t, FormatDiagnostics(diags), want, src)
	}
}
