package core

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// TestKickLanesOverlapBatches: while one kick batch waits on the broker, the
// next is sent in the other lane, and each Kiq gets its own batch's error.
func TestKickLanesOverlapBatches(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var order []string
	boom := errors.New("boom")
	k := newKickLanes(2, kickBatch, func(_ context.Context, msgs []sdk.Outgoing) error {
		mu.Lock()
		order = append(order, msgs[0].TaskID)
		mu.Unlock()
		if msgs[0].TaskID == "first" {
			close(started)
			<-release // the broker has not acknowledged the first batch yet
			return boom
		}
		return nil
	})
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	first := make(chan error, 1)
	go func() { first <- k.Do(ctx, sdk.Outgoing{TaskID: "first"}) }()
	<-started

	require.NoError(t, k.Do(ctx, sdk.Outgoing{TaskID: "second"}), "the second batch is not held behind the first")
	close(release)
	require.ErrorIs(t, <-first, boom, "the first kick reports its own batch's error")
	require.Equal(t, []string{"first", "second"}, order)
	require.Zero(t, k.load[0].Load()+k.load[1].Load())

	// A lone caller keeps using the first lane.
	require.NoError(t, k.Do(ctx, sdk.Outgoing{TaskID: "third"}))
	require.Equal(t, "third", order[2])
}
