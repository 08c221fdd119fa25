package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestWatchParentCallsGoneWhenParentChanges(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	getppid := func() int {
		if calls.Add(1) <= 3 {
			return 4242 // the host
		}
		return 1 // re-parented to init: the host died
	}
	gone := make(chan struct{})
	go watchParent(context.Background(), time.Millisecond, getppid, func() { close(gone) })
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("watchParent did not notice the new parent")
	}
}

func TestWatchParentStaysQuietWhileParentLives(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	polls := make(chan struct{}, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchParent(ctx, time.Millisecond, func() int {
			select {
			case polls <- struct{}{}:
			default:
			}
			return 4242
		}, func() { t.Error("gone called while the parent is alive") })
	}()
	for range 20 { // the initial read plus polls
		<-polls
	}
	cancel()
	<-done
}

func TestChunkBySize(t *testing.T) {
	t.Parallel()
	size := func(n int) int { return n }
	require.Nil(t, chunkBySize([]int{}, 100, size))
	require.Equal(t, [][]int{{10, 10}}, chunkBySize([]int{10, 10}, 1000, size))
	// Each item costs its size plus a 64-byte envelope.
	require.Equal(t, [][]int{{100}, {100}, {100}}, chunkBySize([]int{100, 100, 100}, 200, size))
	// An item alone over the limit still gets its own chunk.
	require.Equal(t, [][]int{{5000}, {1}}, chunkBySize([]int{5000, 1}, 1000, size))
}

func TestCreditWindow(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newCreditWindow(3)
	n, err := c.wait(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	c.take(3)

	got := make(chan int, 1)
	go func() {
		n, _ := c.wait(ctx)
		got <- n
	}()
	c.add(2)
	require.Equal(t, 2, <-got)

	c.take(2)
	short, cancelShort := context.WithCancel(ctx)
	cancelShort()
	_, err = c.wait(short)
	require.ErrorIs(t, err, context.Canceled)
}

func TestTailBufferKeepsLastLines(t *testing.T) {
	t.Parallel()
	tb := &tailBuffer{max: 32}
	for i := range 10 {
		fmt.Fprintf(tb, "line %d\n", i)
	}
	s := tb.String()
	require.True(t, strings.HasSuffix(s, "line 9"), s)
	require.True(t, strings.HasPrefix(s, "line "), "starts at a line boundary: %q", s)
	require.LessOrEqual(t, len(s), 32)
}

func TestStatusRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, sentinel := range []error{ErrNotFound, ErrUnsupported, ErrMessageTooLarge, ErrUnavailable, ErrUnauthenticated, ErrClosed} {
		err := fromStatus(ctx, "op", toStatus(fmt.Errorf("wrapped: %w", sentinel)))
		require.ErrorIs(t, err, sentinel)
		require.Contains(t, err.Error(), "op: wrapped: "+sentinel.Error())
	}
	err := fromStatus(ctx, "op", toStatus(errors.New("plain")))
	require.EqualError(t, err, "op: plain")

	// gRPC's own size refusal also maps to ErrMessageTooLarge, with the hint.
	err = fromStatus(ctx, "op", status.Error(codes.ResourceExhausted, "grpc: received message larger than max (10 vs. 5)"))
	require.ErrorIs(t, err, ErrMessageTooLarge)
	require.ErrorContains(t, err, "raise max_message_size")

	// A plugin that sets the gRPC code itself (a permission refusal) is
	// understood as well.
	err = fromStatus(ctx, "op", status.Error(codes.PermissionDenied, "NOPERM this user has no permissions"))
	require.ErrorIs(t, err, ErrUnauthenticated)

	done, cancel := context.WithCancel(ctx)
	cancel()
	err = fromStatus(done, "op", status.Error(codes.Canceled, "context canceled"))
	require.ErrorIs(t, err, context.Canceled)
}
