package taskiqnats

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/conformance"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

const conformanceMaxSize = 64 << 10

// TestConformance runs the SDK's broker and result backend suites against
// this plugin as a real process and a real NATS server (TASKIQ_NATS_URL),
// every launch on streams and a bucket of its own.
func TestConformance(t *testing.T) {
	url := natsURL(t)
	t.Parallel()
	t.Run("Broker", func(t *testing.T) {
		t.Parallel()
		conformance.TestBroker(t, func(t *testing.T) sdk.Broker {
			cfg := testBrokerConfig(t, url, testNames(t, url), nil)
			return sdktest.Launch(t, sdk.KindBroker, cfg, sdktest.WithMaxMessageSize(conformanceMaxSize)).Broker()
		}, BrokerCapabilities,
			conformance.WithMaxMessageSize(conformanceMaxSize),
			conformance.WithLease(2500*time.Millisecond),
			conformance.WithDefaultLease(2500*time.Millisecond))
	})
	launchResults := func(ttl string) func(t *testing.T) sdk.ResultBackend {
		return func(t *testing.T) sdk.ResultBackend {
			b, err := json.Marshal(map[string]any{
				"servers": []string{url}, "bucket": testNames(t, url), "poll_fallback": "200ms", "result_ttl": ttl,
			})
			require.NoError(t, err)
			return sdktest.Launch(t, sdk.KindResultBackend, string(b), sdktest.WithMaxMessageSize(conformanceMaxSize)).ResultBackend()
		}
	}
	t.Run("ResultBackend", func(t *testing.T) {
		t.Parallel()
		conformance.TestResultBackend(t, launchResults("0s"), ResultCapabilities, conformance.WithMaxMessageSize(conformanceMaxSize))
	})
	t.Run("ResultBackendTTL", func(t *testing.T) {
		t.Parallel()
		conformance.TestResultBackend(t, launchResults("2s"), ResultCapabilities,
			conformance.WithMaxMessageSize(conformanceMaxSize), conformance.WithResultTTL(2*time.Second))
	})
}
