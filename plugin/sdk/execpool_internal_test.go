package sdk

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitIdle waits until n goroutines of p wait for work.
func waitIdle(t *testing.T, p *execPool, n int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.idle.Load() != n {
		require.True(t, time.Now().Before(deadline), "the pool's goroutines never all waited (%d waiting, want %d)", p.idle.Load(), n)
		runtime.Gosched()
	}
}

func TestExecPoolRunsCallsConcurrently(t *testing.T) {
	p := newExecPool(2)
	// More blocked calls than the pool keeps: each needs a goroutine of its own.
	const n = 8
	var started, release sync.WaitGroup
	started.Add(n)
	release.Add(1)
	for range n {
		p.run(func() {
			started.Done()
			release.Wait()
		})
	}
	started.Wait() // every call runs at once; none waits for another to end
	release.Done()
	// Past the bound, the goroutines exit when their call ends.
	waitIdle(t, p, 2)
	p.close()
}

func TestExecPoolReusesAWaitingGoroutine(t *testing.T) {
	p := newExecPool(4)
	ids := make(chan int64, 2)
	record := func() { ids <- goid() }
	p.run(record)
	first := <-ids
	waitIdle(t, p, 1)
	p.run(record)
	require.Equal(t, first, <-ids, "the second call runs on the goroutine the first one left waiting")
	p.close()
}

func TestExecPoolCloseWaitsForRunningCalls(t *testing.T) {
	p := newExecPool(4)
	release := make(chan struct{})
	var finished atomic.Bool
	p.run(func() {
		<-release
		finished.Store(true)
	})
	closed := make(chan struct{})
	go func() {
		p.close()
		close(closed)
	}()
	// Give close every chance to return early: it must not.
	for range 100 {
		runtime.Gosched()
	}
	select {
	case <-closed:
		t.Fatal("close returned while a call was still running")
	default:
	}
	close(release)
	<-closed
	require.True(t, finished.Load(), "close returned before the running call ended")
}

// goid is the calling goroutine's id, read from its stack header.
func goid() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	var id int64
	for _, c := range b[len("goroutine "):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + int64(c-'0')
	}
	return id
}
