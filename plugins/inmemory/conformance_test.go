package inmemory

import (
	"context"
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
			c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"conformance","lease":"1500ms","max_attempts":4}`,
				sdktest.WithMaxMessageSize(conformanceMaxSize))
			return c.Broker()
		}, BrokerCapabilities,
			conformance.WithMaxMessageSize(conformanceMaxSize),
			conformance.WithLease(time.Second),
			conformance.WithDefaultLease(1500*time.Millisecond),
			conformance.WithMaxAttempts(4))
	})
	// In process, the suite can read the dead-letter store; the process
	// boundary is what the run above checks.
	t.Run("BrokerInProcess", func(t *testing.T) {
		t.Parallel()
		conformance.TestBroker(t, func(t *testing.T) sdk.Broker {
			b := NewBroker(BrokerOptions{Queue: "conformance", Lease: 1500 * time.Millisecond, MaxAttempts: 4})
			t.Cleanup(func() { _ = b.Close(context.Background()) })
			return b
		}, BrokerCapabilities,
			conformance.WithLease(time.Second),
			conformance.WithDefaultLease(1500*time.Millisecond),
			conformance.WithMaxAttempts(4),
			conformance.WithSkip("MessageSizeLimit", "in process, no process boundary enforces the size limit"),
			conformance.WithDeadLetters(func(t *testing.T, b sdk.Broker, _ string) []conformance.DeadLetter {
				var out []conformance.DeadLetter
				for _, d := range b.(*Broker).DeadLetters() {
					out = append(out, conformance.DeadLetter{Body: d.Body, Reason: d.Reason})
				}
				return out
			}))
	})
	t.Run("ResultBackend", func(t *testing.T) {
		t.Parallel()
		conformance.TestResultBackend(t, func(t *testing.T) sdk.ResultBackend {
			c := sdktest.Launch(t, sdk.KindResultBackend, `{}`, sdktest.WithMaxMessageSize(conformanceMaxSize))
			return c.ResultBackend()
		}, ResultCapabilities, conformance.WithMaxMessageSize(conformanceMaxSize))
	})
	t.Run("ResultBackendTTL", func(t *testing.T) {
		t.Parallel()
		conformance.TestResultBackend(t, func(t *testing.T) sdk.ResultBackend {
			c := sdktest.Launch(t, sdk.KindResultBackend, `{"result_ttl":"2s"}`, sdktest.WithMaxMessageSize(conformanceMaxSize))
			return c.ResultBackend()
		}, ResultCapabilities, conformance.WithMaxMessageSize(conformanceMaxSize), conformance.WithResultTTL(2*time.Second))
	})
}
