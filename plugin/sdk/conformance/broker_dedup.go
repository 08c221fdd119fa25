package conformance

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// dedup: kicks of one task id with a dedup window, in one batch and in
// several, leave one message; other task ids, and kicks without a window,
// are not affected.
func (s *brokerSuite) dedup(t *testing.T, b *bundle) {
	first := b.msg("")
	first.DedupWindow = time.Minute
	again := first
	other := b.msg("")
	other.DedupWindow = time.Minute
	b.kick(first, again)
	b.kick(again, other)
	b.kick(again)

	plain := b.msg("")
	plainAgain := plain // no window: a plain kick is never dropped
	b.kick(plain)
	b.kick(plainAgain)

	st := b.listen(sdk.ListenRequest{})
	ds := b.recv(st, 4, 10)
	count := map[string]int{}
	for _, d := range ds {
		count[b.mustID(d)]++
	}
	b.settle(st, sdk.SettleAck, ds...)
	require.Equal(t, 1, count[first.TaskID], "kicks of %s within its dedup window", first.TaskID)
	require.Equal(t, 1, count[other.TaskID], "another task id with a window")
	require.Equal(t, 2, count[plain.TaskID], "kicks without a dedup window are never dropped")
	b.barrier(st, "", "a deduplicated kick was dropped")
}
