package taskiqredis

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// TestKeySlot checks the slot function against values of CLUSTER KEYSLOT.
func TestKeySlot(t *testing.T) {
	t.Parallel()
	require.EqualValues(t, 12182, keySlot("foo"))
	require.EqualValues(t, 11058, keySlot("somekey"))
	require.Equal(t, keySlot("user1000"), keySlot("{user1000}.following"))
	require.Equal(t, keySlot("{q}"), keySlot("{q}:dead"))
	require.Equal(t, keySlot("{}x"), keySlot("{}x"), "an empty tag hashes the whole key")
	require.NotEqual(t, keySlot("{}x"), keySlot("{}x:delayed"))
}

// TestCrossSlotDeadLetter: in cluster mode a dead_letter_queue of its own
// lives in another slot than the queue, so it cannot share a script with
// the XACK; the dead letter is written first and the entry acked after,
// and an entry another worker reclaimed meanwhile is left alone. miniredis
// does not enforce slots; the broker is told it is a cluster.
func TestCrossSlotDeadLetter(t *testing.T) {
	t.Parallel()
	e := newMiniEnv(t)
	b := e.broker(t, fast(map[string]any{"queue": "q", "dead_letter_queue": "all-dead", "consumer_name": "a", "lease": "1h"}))
	b.opts.clusterHashes = true // keys "{q}", "{q}:delayed"; "all-dead" elsewhere
	require.False(t, b.sameSlot(b.streamKey("q"), b.deadKey("q")))
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("one"), out("two"))
	ds := recvN(t, s, 2)
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleDeadLetter, Reason: "why"}}))
	dead, err := e.rdb.XRange(ctxT(t), "all-dead", "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "one", dead[0].Values["data"])
	require.Equal(t, "why", dead[0].Values["reason"])
	p, err := e.rdb.XPending(ctxT(t), "{q}", defaultGroup).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, p.Count, "the dead-lettered entry was acked, the other one is still pending")

	// Another consumer takes the second entry over; a late dead letter
	// from the first must not write a copy.
	e.advance(2 * time.Hour)
	other := e.broker(t, fast(map[string]any{"queue": "q", "dead_letter_queue": "all-dead", "consumer_name": "b", "lease": "1h"}))
	other.opts.clusterHashes = true
	so := listen(t, other, sdk.ListenRequest{})
	require.Equal(t, "two", string(recvN(t, so, 1)[0].Body))
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[1].ID, Kind: sdk.SettleDeadLetter}}))
	require.EqualValues(t, 1, e.rdb.XLen(ctxT(t), "all-dead").Val())
}
