package sdk_test

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// processGone reports whether pid has exited: no such process, or a zombie
// waiting for a reaper that may never come in a container.
func processGone(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return os.IsNotExist(err)
	}
	// The state follows the parenthesised command name.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// A plugin whose host dies by SIGKILL (no chance to stop its children)
// notices it is orphaned and exits by itself.
func TestPluginExitsWhenHostIsKilled(t *testing.T) {
	t.Parallel()
	host := exec.Command(testExe(t))
	host.Env = append(os.Environ(), envFakeMode+"=host")
	stdout, err := host.StdoutPipe()
	require.NoError(t, err)
	host.Stderr = &syncBuffer{}
	require.NoError(t, host.Start())
	t.Cleanup(func() {
		_ = host.Process.Kill()
		_ = host.Wait()
	})

	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "intermediate host output: %s", host.Stderr)
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	require.False(t, processGone(pid))
	t.Cleanup(func() {
		if !processGone(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	require.NoError(t, host.Process.Signal(syscall.SIGKILL))
	_ = host.Wait()
	require.Eventually(t, func() bool { return processGone(pid) }, 10*time.Second, 20*time.Millisecond,
		"plugin %d outlived its host", pid)
}
