package inmemory

import (
	"testing"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/conformance"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// conformanceMaxSize keeps the size-limit subtests small.
const conformanceMaxSize = 64 << 10

// TestConformance runs the SDK's broker and result backend suites against
// this plugin as a real process (TestMain in process_test.go serves it).
// Every launch is a process of its own, so brokers are isolated.
func TestConformance(t *testing.T) {
	t.Parallel()
	t.Run("Broker", func(t *testing.T) {
		t.Parallel()
		conformance.TestBroker(t, func(t *testing.T) sdk.Broker {
			c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"conformance","lease":"1500ms"}`,
				sdktest.WithMaxMessageSize(conformanceMaxSize))
			return c.Broker()
		}, BrokerCapabilities,
			conformance.WithMaxMessageSize(conformanceMaxSize),
			conformance.WithLease(time.Second),
			conformance.WithDefaultLease(1500*time.Millisecond))
	})
	t.Run("ResultBackend", func(t *testing.T) {
		t.Parallel()
		conformance.TestResultBackend(t, func(t *testing.T) sdk.ResultBackend {
			c := sdktest.Launch(t, sdk.KindResultBackend, `{}`, sdktest.WithMaxMessageSize(conformanceMaxSize))
			return c.ResultBackend()
		}, ResultCapabilities, conformance.WithMaxMessageSize(conformanceMaxSize))
	})
	t.Run("ScheduleSource", func(t *testing.T) {
		t.Parallel()
		conformance.TestScheduleSource(t, func(t *testing.T) sdk.ScheduleSource {
			return sdktest.Launch(t, sdk.KindScheduleSource, `{}`).ScheduleSource()
		}, ScheduleCapabilities)
	})
	t.Run("ResultBackendTTL", func(t *testing.T) {
		t.Parallel()
		conformance.TestResultBackend(t, func(t *testing.T) sdk.ResultBackend {
			c := sdktest.Launch(t, sdk.KindResultBackend, `{"result_ttl":"2s"}`, sdktest.WithMaxMessageSize(conformanceMaxSize))
			return c.ResultBackend()
		}, ResultCapabilities, conformance.WithMaxMessageSize(conformanceMaxSize), conformance.WithResultTTL(2*time.Second))
	})
}
