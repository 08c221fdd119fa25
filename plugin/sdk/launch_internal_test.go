package sdk

import (
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// An exit during start-up is told by the runner having seen the process
// end, whatever words go-plugin chose for the failure.
func TestLaunchErrorClassifiesAnExitWithoutItsText(t *testing.T) {
	status := exec.Command("sh", "-c", "exit 3").Run()
	require.Error(t, status)
	err := launchError("/bin/p", time.Second, errors.New("plugin exited before the handshake, in other words"), "boom", true, status)
	require.EqualError(t, err, "plugin /bin/p exited during start-up (exit status 3); is it a taskiq-go plugin built with plugin/sdk?\nplugin stderr (last lines):\nboom")

	// A binary that printed a line that is not the handshake is not a
	// plugin, even when its exit was seen first.
	err = launchError("/bin/p", time.Second, errors.New("Unrecognized remote plugin message: hello"), "", true, nil)
	require.ErrorIs(t, err, ErrIncompatiblePlugin)
	require.ErrorContains(t, err, "is not a taskiq-go plugin")

	// Stdout closed before the exit was reaped: still an exit.
	err = launchError("/bin/p", time.Second, errors.New("Unrecognized remote plugin message: \nFailed to read any lines from plugin's stdout"), "", false, nil)
	require.ErrorContains(t, err, "exited during start-up;")

	err = launchError("/bin/p", 2*time.Second, errors.New("timeout while waiting for plugin to start"), "", false, nil)
	require.ErrorContains(t, err, "did not complete the plugin handshake within 2s")

	cause := errors.New("fork/exec: exec format error")
	err = launchError("/bin/p", time.Second, cause, "", false, nil)
	require.ErrorIs(t, err, cause)
}

func TestRunnerReportsExit(t *testing.T) {
	l := &launcher{}
	exited, _ := l.exitStatus()
	require.False(t, exited, "nothing started")
	r, err := newCmdRunner(nil, exec.Command("sh", "-c", "exit 4"))
	require.NoError(t, err)
	l.runner = r
	require.NoError(t, r.cmd.Start())
	exited, _ = l.exitStatus()
	require.False(t, exited, "not waited for yet")
	require.Error(t, r.Wait(t.Context()))
	exited, status := l.exitStatus()
	require.True(t, exited)
	require.EqualError(t, status, "exit status 4")
}
