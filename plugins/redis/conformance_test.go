package taskiqredis

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
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
			} else {
				opts = append(opts, conformance.WithMaxAttempts(4))
			}
			var launched sync.Map // sdk.Broker -> conformanceLaunch
			launch := func(t *testing.T, l conformanceLaunch) sdk.Broker {
				c := sdktest.Launch(t, sdk.KindBroker, l.cfg, sdktest.WithMaxMessageSize(conformanceMaxSize))
				l.client = c
				b := c.Broker()
				launched.Store(b, l)
				return b
			}
			opts = append(opts,
				conformance.WithDeadLetters(func(t *testing.T, b sdk.Broker, queue string) []conformance.DeadLetter {
					l, _ := launched.Load(b)
					return readDeadLetters(t, l.(conformanceLaunch), queue)
				}),
				conformance.WithRestart(func(t *testing.T, b sdk.Broker) sdk.Broker {
					l, _ := launched.Load(b)
					l.(conformanceLaunch).client.Kill()
					return launch(t, l.(conformanceLaunch))
				}))
			conformance.TestBroker(t, func(t *testing.T) sdk.Broker {
				l := conformanceLaunch{url: conformanceRedis(t, false), queue: "conf-" + randomHex(6)}
				l.cfg = conformanceConfig(t, map[string]any{
					"url":          l.url,
					"mode":         mode,
					"queue":        l.queue,
					"lease":        "1500ms",
					"block":        "100ms",
					"max_attempts": 4,
				})
				return launch(t, l)
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

// conformanceLaunch is one broker process the suite launched: enough to
// read its dead letters and to start it again the same way.
type conformanceLaunch struct {
	url, queue, cfg string
	client          *sdk.Client
}

// readDeadLetters reads the dead-letter stream of queue ("" is the
// launch's default queue).
func readDeadLetters(t *testing.T, l conformanceLaunch, queue string) []conformance.DeadLetter {
	if queue == "" {
		queue = l.queue
	}
	opt, err := redis.ParseURL(l.url)
	require.NoError(t, err)
	c := redis.NewClient(opt)
	defer c.Close()
	entries, err := c.XRange(context.Background(), queue+":dead", "-", "+").Result()
	require.NoError(t, err)
	out := make([]conformance.DeadLetter, len(entries))
	for i, e := range entries {
		data, _ := e.Values["data"].(string)
		reason, _ := e.Values["reason"].(string)
		out[i] = conformance.DeadLetter{Body: []byte(data), Reason: reason}
	}
	return out
}
