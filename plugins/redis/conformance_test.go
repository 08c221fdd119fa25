package taskiqredis

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/conformance"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// conformanceMaxSize keeps the size-limit subtests small.
const conformanceMaxSize = 64 << 10

// conformanceRedis returns the Redis URL one launch of the conformance
// suites uses: TASKIQ_REDIS_URL when set (every launch gets its own queue or
// key prefix there), else a miniredis of the launch's own. With tick, the
// miniredis clock follows real time, so key expiry (result_ttl) happens.
func conformanceRedis(t *testing.T, tick bool) string {
	if u := os.Getenv("TASKIQ_REDIS_URL"); u != "" {
		return u
	}
	mr := miniredis.RunT(t)
	if tick {
		// miniredis only expires keys when told that time passed.
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			tk := time.NewTicker(20 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-tk.C:
					mr.FastForward(20 * time.Millisecond)
				case <-stop:
					return
				}
			}
		}()
		t.Cleanup(func() { close(stop); <-done })
	}
	return "redis://" + mr.Addr() + "/0"
}

func conformanceConfig(t *testing.T, kv map[string]any) string {
	b, err := json.Marshal(kv)
	require.NoError(t, err)
	return string(b)
}

// TestConformance runs the SDK's broker and result backend suites against
// this plugin as a real process (TestMain serves it), for the stream and
// list broker modes. Pub/sub mode broadcasts, which the broker suite does
// not cover.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{modeStream, modeList} {
		t.Run("Broker/"+mode, func(t *testing.T) {
			t.Parallel()
			var opts []conformance.Option
			opts = append(opts,
				conformance.WithMaxMessageSize(conformanceMaxSize),
				conformance.WithLease(time.Second),
				conformance.WithDefaultLease(1500*time.Millisecond))
			if mode == modeList {
				opts = append(opts, conformance.WithSkip("AttemptCounting",
					"list mode stores bare bodies, as taskiq-redis does: a nacked message comes back as attempt 1"))
			}
			conformance.TestBroker(t, func(t *testing.T) sdk.Broker {
				cfg := conformanceConfig(t, map[string]any{
					"url":   conformanceRedis(t, false),
					"mode":  mode,
					"queue": "conf-" + randomHex(6),
					"lease": "1500ms",
					"block": "100ms",
				})
				return sdktest.Launch(t, sdk.KindBroker, cfg, sdktest.WithMaxMessageSize(conformanceMaxSize)).Broker()
			}, capabilitiesFor(mode), opts...)
		})
	}
	resultCaps := []string{sdk.CapWait, sdk.CapProgress}
	t.Run("ResultBackend", func(t *testing.T) {
		t.Parallel()
		conformance.TestResultBackend(t, func(t *testing.T) sdk.ResultBackend {
			cfg := conformanceConfig(t, map[string]any{
				"url":           conformanceRedis(t, false),
				"prefix":        "conf-" + randomHex(6),
				"poll_fallback": "200ms",
			})
			return sdktest.Launch(t, sdk.KindResultBackend, cfg, sdktest.WithMaxMessageSize(conformanceMaxSize)).ResultBackend()
		}, resultCaps, conformance.WithMaxMessageSize(conformanceMaxSize))
	})
	t.Run("ResultBackendTTL", func(t *testing.T) {
		t.Parallel()
		conformance.TestResultBackend(t, func(t *testing.T) sdk.ResultBackend {
			cfg := conformanceConfig(t, map[string]any{
				"url":        conformanceRedis(t, true),
				"prefix":     "conf-" + randomHex(6),
				"result_ttl": "2s",
			})
			return sdktest.Launch(t, sdk.KindResultBackend, cfg, sdktest.WithMaxMessageSize(conformanceMaxSize)).ResultBackend()
		}, resultCaps, conformance.WithMaxMessageSize(conformanceMaxSize), conformance.WithResultTTL(2*time.Second))
	})
}

// TestInspectorConformance runs the SDK's inspection suite against the
// stream and list modes.
func TestInspectorConformance(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{modeStream, modeList} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			conformance.TestInspector(t, func(t *testing.T) conformance.Inspected {
				cfg := conformanceConfig(t, map[string]any{
					"url":             conformanceRedis(t, false),
					"mode":            mode,
					"queue":           "insp-" + randomHex(6),
					"block":           "100ms",
					"inspect_refresh": "100ms",
					"pause_poll":      "50ms",
				})
				c := sdktest.Launch(t, sdk.KindBroker, cfg)
				in := c.Inspector()
				return conformance.Inspected{Broker: c.Broker(), Inspector: in, Canceller: in}
			}, capabilitiesFor(mode))
		})
	}
}
