package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
)

// Plugin sockets live in a private directory. go-plugin creates its unix
// sockets (the plugin's gRPC server, and the host's GRPCBroker listener that
// serves sdk.Host) with os.CreateTemp in os.TempDir() unless a runner
// function is configured, and a socket's mode follows the umask: under umask
// 000 any local user could connect and call Broker.Kick or Host.Kick. With
// RunnerFunc set, go-plugin makes a per-plugin directory (os.MkdirTemp, 0700)
// inside UnixSocketConfig.TempDir, hands it to the plugin
// (PLUGIN_UNIX_SOCKET_DIR), puts the host's listeners there too and removes
// it when it kills a started plugin; the launcher removes it after a failed
// start, which go-plugin leaves behind.

// maxSocketPath is the longest unix socket path every unix accepts (macOS:
// 104 bytes with the terminating NUL; Linux: 108).
const maxSocketPath = 103

// socketPathSuffix is the length go-plugin adds to TempDir:
// "/plugin-dir" and "/plugin", each followed by up to 10 random digits.
const socketPathSuffix = len("/plugin-dir") + 10 + len("/plugin") + 10

// socketBase is where the per-plugin directories go: the temp directory, or
// /tmp when the temp directory's path is too long for a socket path in it
// (a test harness's or macOS's TMPDIR can be). The directory inside is 0700
// either way, so a shared base is safe.
func socketBase() string {
	base := os.TempDir()
	if len(base)+socketPathSuffix > maxSocketPath {
		return "/tmp"
	}
	return base
}

// launcher starts one plugin binary through go-plugin's RunnerFunc, with
// every socket in a private directory. go-plugin passes the runner a
// command of its own making that carries only its variables (no binary), so
// the launcher runs path with env followed by those.
type launcher struct {
	path      string
	env       []string
	runner    *cmdRunner
	socketDir string // set by run
}

func (l *launcher) socketConfig() *plugin.UnixSocketConfig {
	return &plugin.UnixSocketConfig{TempDir: socketBase()}
}

func (l *launcher) run(logger hclog.Logger, spec *exec.Cmd, socketDir string) (runner.Runner, error) {
	l.socketDir = socketDir
	// MkdirTemp's 0700 is masked by the umask; an odd umask such as 0277
	// would leave a directory in which no socket can be made.
	if err := os.Chmod(socketDir, 0o700); err != nil {
		return nil, fmt.Errorf("plugin socket directory: %w", err)
	}
	cmd := exec.Command(l.path)
	cmd.Env = append(append([]string(nil), l.env...), spec.Env...)
	cmd.Stdin = spec.Stdin
	r, err := newCmdRunner(logger, cmd)
	if err != nil {
		return nil, err
	}
	l.runner = r
	return r, nil
}

// cleanup removes the socket directory (go-plugin does only for a plugin
// that started).
func (l *launcher) cleanup() {
	if l != nil && l.socketDir != "" {
		_ = os.RemoveAll(l.socketDir)
	}
}

// exitStatus reports whether the started process has exited and, if so,
// how (nil: status 0).
func (l *launcher) exitStatus() (exited bool, status error) {
	if l.runner == nil {
		return false, nil
	}
	select {
	case <-l.runner.exited:
		return true, l.runner.waitErr
	default:
		return false, nil
	}
}

// pid is the started process's pid, 0 before.
func (l *launcher) pid() int {
	if l.runner == nil || l.runner.cmd.Process == nil {
		return 0
	}
	return l.runner.cmd.Process.Pid
}

// cmdRunner runs the plugin as a child process: what go-plugin's own
// (internal) runner does when no RunnerFunc is set.
type cmdRunner struct {
	logger hclog.Logger
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr io.ReadCloser

	// exited is closed when Wait saw the process end, with waitErr its
	// exit status: how Launch knows a failed start was an exit without
	// reading go-plugin's error text.
	exited  chan struct{}
	waitErr error
}

func newCmdRunner(logger hclog.Logger, cmd *exec.Cmd) (*cmdRunner, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	return &cmdRunner{logger: logger, cmd: cmd, stdout: stdout, stderr: stderr, exited: make(chan struct{})}, nil
}

func (r *cmdRunner) Start(context.Context) error {
	r.logger.Debug("starting plugin", "path", r.cmd.Path, "args", r.cmd.Args)
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.logger.Debug("plugin started", "path", r.cmd.Path, "pid", r.cmd.Process.Pid)
	return nil
}

func (r *cmdRunner) Wait(context.Context) error {
	err := r.cmd.Wait()
	r.waitErr = err
	close(r.exited)
	return err
}

func (r *cmdRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *cmdRunner) Stdout() io.ReadCloser { return r.stdout }

func (r *cmdRunner) Stderr() io.ReadCloser { return r.stderr }

func (r *cmdRunner) Name() string { return r.cmd.Path }

// ID is the pid, or "" before Start (go-plugin then has nothing to kill).
func (r *cmdRunner) ID() string {
	if r.cmd.Process == nil {
		return ""
	}
	return fmt.Sprint(r.cmd.Process.Pid)
}

func (r *cmdRunner) Diagnose(context.Context) string {
	return "the plugin binary may be built for another architecture, miss a shared library, " +
		"not be executable by this user, or not be a go-plugin plugin at all"
}

func (*cmdRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (*cmdRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

var _ runner.Runner = (*cmdRunner)(nil)
