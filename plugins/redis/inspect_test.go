package taskiqredis

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// TestInspector covers what the conformance suite does not: the counts are
// cached for inspect_refresh (a kick shows only after it), a shared
// dead_letter_queue is counted on the default queue and listed per queue,
// and pub/sub mode has no inspector.
func TestInspector(t *testing.T) {
	t.Parallel()
	runSuite(t, map[string]func(t *testing.T, e *testEnv){
		"CountsAreCached": func(t *testing.T, e *testEnv) {
			q := "insp-cache-" + randomHex(4)
			// No delayed mover: by this test's clock it would move other
			// tests' delayed messages (it serves every registered queue).
			b := e.broker(t, fast(map[string]any{"queue": q, "inspect_refresh": "1m", "move_delayed": false}))
			var mu sync.Mutex
			now := time.Now()
			b.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			kick(t, b, out("a"))
			stats := func() sdk.QueueStats {
				qs, err := b.Queues(ctxT(t))
				require.NoError(t, err)
				for _, s := range qs {
					if s.Name == q {
						return s
					}
				}
				t.Fatalf("queue %s not listed in %+v", q, qs)
				return sdk.QueueStats{}
			}
			require.EqualValues(t, 1, stats().Queued)
			kick(t, b, out("b"), out("c"))
			require.EqualValues(t, 1, stats().Queued, "within inspect_refresh the cached counts are returned")
			mu.Lock()
			now = now.Add(time.Minute)
			mu.Unlock()
			require.EqualValues(t, 3, stats().Queued, "after inspect_refresh the counts are read again")
		},
		"SharedDeadLetterQueue": func(t *testing.T, e *testEnv) {
			q := "insp-shared-" + randomHex(4)
			b := e.broker(t, fast(map[string]any{"queue": q, "dead_letter_queue": q + "-dlq", "inspect_refresh": "100ms"}))
			other := out("other")
			other.Queue = q + "-other"
			kick(t, b, out("mine"), other)
			for _, name := range []string{q, q + "-other"} {
				s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: name}}})
				d := recvN(t, s, 1)[0]
				require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleDeadLetter, Reason: "r-" + name}}))
			}
			page, err := b.Messages(ctxT(t), sdk.MessageQuery{Queue: q + "-other", State: sdk.StateDead})
			require.NoError(t, err)
			require.Len(t, page.Messages, 1, "a queue lists its own dead letters from the shared stream")
			require.Equal(t, "r-"+q+"-other", page.Messages[0].Reason)
			qs, err := b.Queues(ctxT(t))
			require.NoError(t, err)
			for _, s := range qs {
				switch s.Name {
				case q:
					require.EqualValues(t, 2, s.Dead, "the shared stream is counted on the default queue")
				case q + "-other":
					require.EqualValues(t, 0, s.Dead)
				}
			}
		},
		"PubSubHasNone": func(t *testing.T, e *testEnv) {
			b := e.broker(t, fast(map[string]any{"mode": modePubSub, "queue": "insp-ps-" + randomHex(4)}))
			_, err := b.Queues(ctxT(t))
			require.ErrorIs(t, err, sdk.ErrUnsupported)
			require.NotContains(t, b.Capabilities(), sdk.CapInspect)
		},
	})
}
