package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func testSupervisor(exe string, args ...string) *supervisor {
	return &supervisor{
		logger:    hclog.NewNullLogger(),
		exe:       exe,
		args:      args,
		workers:   1,
		killAfter: 10 * time.Second,
		events:    make(chan supervisorEvent, 16),
		health:    newHealthState(1),
	}
}

// TestSupervisorStopsPendingRestart: a worker that could not start waits for
// its restart timer; when the supervisor stops meanwhile, the timer is
// stopped with it and never fires into the loop that is gone.
func TestSupervisorStopsPendingRestart(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := testSupervisor(filepath.Join(t.TempDir(), "missing"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Zero(t, s.run(ctx))
	require.Equal(t, 1, s.failures, "the worker failed to start and waited for a restart")

	// The timer would have fired after restartBackoffStart.
	time.Sleep(2 * restartBackoffStart)
	require.Empty(t, s.events, "a restart timer fired after the supervisor stopped")
}

// TestSupervisorRunEndsItsGoroutines: run returns once the goroutines it
// started have ended, even when a worker left a process behind that holds
// the worker's status pipe open (as a plugin the worker started inherits
// it).
func TestSupervisorRunEndsItsGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// The worker starts a process that outlives it with fd 3 open, says it
	// is ready and waits; SIGTERM ends it, not the process it left.
	pidFile := filepath.Join(t.TempDir(), "pid")
	s := testSupervisor("/bin/sh", "-c", `echo $$ >"$0"; sleep 60 & echo ready >&3; wait`, pidFile)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() { code <- s.run(ctx) }()
	require.Eventually(t, func() bool { ok, _ := s.health.ready(); return ok }, 10*time.Second, 5*time.Millisecond)
	// The worker ran in its own process group; end what it left behind,
	// after goleak looked (a cleanup runs after the deferred calls).
	pid, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pgid, err := strconv.Atoi(strings.TrimSpace(string(pid)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	cancel()
	select {
	case c := <-code:
		require.Zero(t, c)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its worker stopped")
	}
}

// The status pipe a worker child inherits (exec clears close-on-exec on
// it) is marked close-on-exec again, so the plugin processes the child
// starts do not hold the supervisor's pipe open.
func TestStatusPipeIsNotInheritedByPlugins(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	// A descriptor of its own, which the writer's file owns and closes.
	fd, err := unix.Dup(int(w.Fd()))
	require.NoError(t, err)
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0) // as a child finds it
	require.NoError(t, err)
	t.Setenv(envWorkerStatusFD, strconv.Itoa(fd))
	write := statusWriter(hclog.NewNullLogger())
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	require.NoError(t, err)
	require.NotZero(t, flags&unix.FD_CLOEXEC, "the status pipe would be inherited by plugin processes")
	write("ready")
	line, err := bufio.NewReader(r).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
}
