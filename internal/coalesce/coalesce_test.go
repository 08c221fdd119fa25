package coalesce

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestCoalescerDeliversEveryItemOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[int]int{}
	batches := 0
	c := New(64, func(_ context.Context, items []int) error {
		mu.Lock()
		defer mu.Unlock()
		batches++
		require.LessOrEqual(t, len(items), 64)
		for _, it := range items {
			seen[it]++
		}
		return nil
	})
	t.Cleanup(c.Close)
	var wg sync.WaitGroup
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				require.NoError(t, c.Do(context.Background(), g*100+i))
			}
		}(g)
	}
	wg.Wait()
	require.Len(t, seen, 5000)
	for k, v := range seen {
		require.Equal(t, 1, v, "item %d", k)
	}
	require.Less(t, batches, 5000, "concurrent calls must share batches")
}

func TestCoalescerReturnsBatchError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	c := New(8, func(_ context.Context, items []string) error {
		for _, it := range items {
			if it == "bad" {
				return boom
			}
		}
		return nil
	})
	t.Cleanup(c.Close)
	require.ErrorIs(t, c.Do(context.Background(), "bad"), boom)
	require.NoError(t, c.Do(context.Background(), "good"))
}

func TestCoalescerKeepsMultiItemCallsWhole(t *testing.T) {
	t.Parallel()
	var sizes []int
	c := New(4, func(_ context.Context, items []int) error {
		sizes = append(sizes, len(items))
		return nil
	})
	t.Cleanup(c.Close)
	require.NoError(t, c.Do(context.Background(), 1, 2, 3, 4, 5, 6))
	require.Equal(t, []int{6}, sizes)
}

func TestCoalescerHonoursContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := New(4, func(ctx context.Context, items []int) error {
		<-release
		return nil
	})
	t.Cleanup(c.Close)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, c.Do(ctx, 1), context.Canceled)
	close(release)
	require.NoError(t, c.Do(context.Background(), 2))
}

func BenchmarkCoalescerParallel(b *testing.B) {
	c := New(512, func(context.Context, []int) error { return nil })
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = c.Do(context.Background(), 1)
		}
	})
}

// A paced coalescer flushes the first item at once; items that come within
// pace of that flush wait out the pause, and what arrives during it leaves
// in one batch when it ends.
func TestPacedCoalescerBatchesWhatArrivesDuringThePause(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		batches [][]int
	)
	c := NewPaced(64, time.Hour, func(_ context.Context, items []int) error {
		mu.Lock()
		defer mu.Unlock()
		batches = append(batches, append([]int(nil), items...))
		return nil
	})
	t.Cleanup(c.Close)
	paused, resume := make(chan struct{}), make(chan struct{})
	c.sleep = func(time.Duration) {
		paused <- struct{}{}
		<-resume
	}

	require.NoError(t, c.Do(context.Background(), 0), "the first item is flushed before any pause")
	var wg sync.WaitGroup
	for i := 1; i <= 9; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); require.NoError(t, c.Do(context.Background(), i)) }()
	}
	<-paused
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.pending) == 9
	}, 10*time.Second, time.Millisecond)
	close(resume) // every later pause returns at once
	go func() {
		for range paused {
		}
	}()
	wg.Wait()
	c.Close()
	close(paused)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, batches, 2)
	require.Equal(t, []int{0}, batches[0])
	require.ElementsMatch(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}, batches[1])
}

// An item that comes more than pace after the last flush is flushed at
// once: a low rate pays no pause (and no timer wakeup) per flush.
func TestPacedCoalescerDoesNotPauseAfterAQuietSpell(t *testing.T) {
	t.Parallel()
	var flushes atomic.Int32
	c := NewPaced(64, 2*time.Millisecond, func(context.Context, []int) error {
		flushes.Add(1)
		return nil
	})
	t.Cleanup(c.Close)
	var paused atomic.Int32
	c.sleep = func(time.Duration) { paused.Add(1) }
	for i := range 5 {
		time.Sleep(5 * time.Millisecond) // over pace since the last flush
		require.NoError(t, c.Do(context.Background(), i))
	}
	require.Equal(t, int32(5), flushes.Load())
	require.Zero(t, paused.Load(), "no item came within pace of a flush")
}

// The flushing goroutine parks between batches and exits when idle; work
// that arrives while it is parked, and after it has exited, is flushed.
func TestCoalescerRunnerParksAndExits(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []int
	c := New(8, func(_ context.Context, items []int) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, items...)
		return nil
	})
	t.Cleanup(c.Close)
	c.idleFor = time.Hour
	require.NoError(t, c.Do(context.Background(), 1))
	require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.parked }, 10*time.Second, time.Millisecond)
	require.NoError(t, c.Do(context.Background(), 2), "a parked runner is woken")

	c.mu.Lock()
	c.idleFor = time.Millisecond
	c.mu.Unlock()
	require.NoError(t, c.Do(context.Background(), 3))
	require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return !c.running }, 10*time.Second, time.Millisecond)
	require.NoError(t, c.Do(context.Background(), 4), "after the runner exited, a new one starts")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{1, 2, 3, 4}, got)
}

// Post does not wait, and its items leave in order with Do's.
func TestCoalescerPostKeepsOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []int
	c := New(64, func(_ context.Context, items []int) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, items...)
		return nil
	})
	t.Cleanup(c.Close)
	for i := range 50 {
		c.Post(i)
	}
	require.NoError(t, c.Do(context.Background(), 50), "Do returns once everything queued before it is flushed")
	mu.Lock()
	defer mu.Unlock()
	want := make([]int, 51)
	for i := range want {
		want[i] = i
	}
	require.Equal(t, want, got)
}

// TestCloseFlushesAndEndsTheRunner: Close flushes what was posted, and
// returns once the flushing goroutine has ended instead of leaving it idle
// for runnerIdle; a later call starts a new one, which the next Close ends.
func TestCloseFlushesAndEndsTheRunner(t *testing.T) {
	others := goleak.IgnoreCurrent()
	flushed := make(chan []int, 4)
	c := New(8, func(_ context.Context, items []int) error {
		flushed <- append([]int(nil), items...)
		return nil
	})
	c.Close() // nothing started: returns at once
	c.Post(1, 2)
	c.Close()
	require.Equal(t, []int{1, 2}, <-flushed, "what was posted is flushed before Close returns")
	goleak.VerifyNone(t, others)

	require.NoError(t, c.Do(context.Background(), 3), "a Coalescer works after Close")
	require.Equal(t, []int{3}, <-flushed)
	c.Close()
	goleak.VerifyNone(t, others)
}
