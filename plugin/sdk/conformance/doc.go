// Package conformance holds the suites every taskiq-go broker, result
// backend and schedule source plugin should pass (TestBroker,
// TestResultBackend, TestScheduleSource). They drive a plugin through its real process
// boundary (the test binary re-executed as the plugin by sdktest, the same
// handshake, gRPC glue and message size limits as in production) and check
// the contracts of plugin/sdk: delivery, settlement, redelivery after a nack
// or an expired lease, delays, routing, dead letter, dedup, size limits,
// results, progress, waiting and expiry; schedules added, listed, replaced
// and deleted, the last fired slots and the leader lease. TestInspector
// checks the inspection and cancellation roles (sdk.CapInspect,
// sdk.CapCancel): counts, listings with filters and cursors, one task, bulk
// actions by refs and by filter with dry runs, pause and resume, heartbeats
// and tombstones.
//
// Capabilities decide what runs: a subtest of a capability the plugin does
// not claim (sdk.CapDelay, sdk.CapLease, ...) is skipped with the reason, so
// a plugin passes the suite by doing well what it claims. A broker that
// claims sdk.CapBroadcast skips the whole broker suite, which checks
// competing consumers.
//
// The subtests run in parallel, each with a broker or result backend of its
// own from the launch function, and never sleep on the happy path: waits
// are deadlines (WithTimeout, 30s by default) that end as soon as the plugin
// delivers. The few checks that something does not happen (no redelivery
// after an ack, not before a delay) wait a bounded time derived from the
// lease or delay the suite asked for.
//
// # Running the suites against your plugin
//
// In the plugin's package, serve the plugin from TestMain, then hand the
// suites a launch function that starts a fresh, isolated instance:
//
//	package mybroker_test
//
//	import (
//		"encoding/json"
//		"os"
//		"testing"
//		"time"
//
//		"github.com/taskiq-go/taskiq/plugin/sdk"
//		"github.com/taskiq-go/taskiq/plugin/sdk/conformance"
//		"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
//
//		"example.com/mybroker"
//	)
//
//	func TestMain(m *testing.M) {
//		sdktest.RunPluginIfRequested(mybroker.Plugin())
//		os.Exit(m.Run())
//	}
//
//	const maxSize = 64 << 10 // a small limit keeps the size subtests fast
//
//	func TestConformance(t *testing.T) {
//		t.Run("Broker", func(t *testing.T) {
//			conformance.TestBroker(t, func(t *testing.T) sdk.Broker {
//				// A queue of its own per launch isolates parallel subtests.
//				cfg, _ := json.Marshal(map[string]any{
//					"url":   os.Getenv("MYBROKER_URL"),
//					"queue": "conformance-" + t.Name(),
//					"lease": "2s",
//				})
//				c := sdktest.Launch(t, sdk.KindBroker, string(cfg), sdktest.WithMaxMessageSize(maxSize))
//				return c.Broker()
//			}, mybroker.BrokerCapabilities,
//				conformance.WithMaxMessageSize(maxSize),
//				conformance.WithLease(time.Second),
//				conformance.WithDefaultLease(2*time.Second))
//		})
//		t.Run("ResultBackend", func(t *testing.T) {
//			conformance.TestResultBackend(t, func(t *testing.T) sdk.ResultBackend {
//				c := sdktest.Launch(t, sdk.KindResultBackend, `{"result_ttl":"3s"}`,
//					sdktest.WithMaxMessageSize(maxSize))
//				return c.ResultBackend()
//			}, mybroker.ResultCapabilities,
//				conformance.WithMaxMessageSize(maxSize),
//				conformance.WithResultTTL(3*time.Second))
//		})
//	}
//
// Then `go test -race ./...` runs them. The options describe what the
// launch function configured (WithDefaultLease, WithResultTTL,
// WithMaxMessageSize) or tune the suite (WithLease, WithDelay, WithTimeout);
// WithSkip skips one subtest by name for a documented limitation that no
// capability expresses. When the plugin talks to a service, run the suites
// once against a test double in CI and again against the real service
// behind an environment variable.
package conformance
