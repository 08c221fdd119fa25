package taskiqnats

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// TestCloseEndsAnEstablishedWatch: Close returns while the bucket watch
// that wakes waiters is established on the server, and a pending
// WaitResult ends with ErrClosed. The watcher ends only with its
// connection, which Close shuts after the watch; Close used to wait for
// the watch forever.
func TestCloseEndsAnEstablishedWatch(t *testing.T) {
	url := natsURL(t)
	bucket := "tq_nats_test_watch_" + randomHex(4)
	t.Cleanup(func() { cleanupPrefix(t, url, "KV_"+bucket) })
	r, err := newResultBackend(ctxT(t), cfgOf(t, map[string]any{"servers": []string{url}, "bucket": bucket}))
	require.NoError(t, err)
	waited := make(chan error, 1)
	go func() {
		_, err := r.WaitResult(context.Background(), "never-stored")
		waited <- err
	}()

	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		s, err := js.Stream(ctxT(t), "KV_"+bucket)
		if err != nil {
			return false
		}
		info, err := s.Info(ctxT(t))
		return err == nil && info.State.Consumers > 0
	}, 20*time.Second, 10*time.Millisecond, "the watch's consumer never appeared")

	closed := make(chan error, 1)
	go func() { closed <- r.Close(context.Background()) }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return while a watch was established")
	}
	require.ErrorIs(t, <-waited, sdk.ErrClosed)
}

// TestForwardEndsWhenTheBackendCloses: the watch's loop ends when the
// backend closes even if the watcher's channel never closes, which
// happens when the watch's subscription closes before the watcher has
// installed the handler that closes the channel (its context was cancelled
// while WatchAll ran). Close waits for this loop, so it would hang.
func TestForwardEndsWhenTheBackendCloses(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	r := &resultBackend{ctx: ctx, stop: stop, waiters: map[string]map[chan []byte]struct{}{}}
	never := make(chan jetstream.KeyValueEntry)
	done := make(chan struct{})
	go func() {
		r.forward(never)
		close(done)
	}()
	stop()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the watch's loop outlived the backend")
	}
}
