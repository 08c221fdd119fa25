package sdk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq/internal/execfile"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// defaultStartTimeout bounds a plugin's start-up handshake.
const defaultStartTimeout = 10 * time.Second

// stderrTailSize is how much of a plugin's stderr a launch error quotes.
const stderrTailSize = 4 << 10

// inheritedEnv lists the only host environment variables a plugin inherits:
// enough to run and find temp space, never the host's secrets. GOCOVERDIR
// is where a binary built with -cover writes its coverage: passing it on
// counts a plugin's code (and a test binary re-executed as a plugin) in the
// host's coverage; it is unset outside such runs.
var inheritedEnv = []string{"PATH", "HOME", "TMPDIR", "LANG", "TZ", "GOCOVERDIR"}

// LaunchConfig says how to start a plugin process.
type LaunchConfig struct {
	// Path is the plugin binary.
	Path string
	// SHA256 optionally pins the binary's checksum (hex). A mismatch fails
	// the launch with ErrChecksumMismatch before anything is executed.
	SHA256 string
	// Logger is the host's logger. Plugin logs arrive here, under a logger
	// named after the binary, at their own level; the plugin logs at this
	// logger's level. Nil: hclog.Default().
	Logger hclog.Logger
	// Env lists extra KEY=VALUE variables for the plugin. The host's
	// environment is not inherited, except PATH, HOME, TMPDIR, LANG, TZ and
	// GOCOVERDIR, so that secrets in the host's environment do not leak into
	// plugins.
	// Later entries win over earlier ones and over the SDK's own variables.
	Env []string
	// AutoMTLS secures the plugin connection with a throw-away mutual TLS
	// certificate pair (about 15 ms more at start-up).
	AutoMTLS bool
	// MaxMessageSize is the largest message body or result in bytes that
	// crosses the boundary; 0 means DefaultMaxMessageSize. The plugin is
	// given the same limit.
	MaxMessageSize int
	// Host is served to the plugin (for middlewares that kick or read
	// results), over one connection set up at the first Configure. Nil: the
	// plugin gets no Host.
	Host Host
	// StartTimeout bounds the start-up handshake; 0 means 10s. A deadline
	// of Launch's ctx that comes earlier wins.
	StartTimeout time.Duration
	// Prefetch is the credit window of each delivery stream: how many
	// deliveries the plugin may hand out before the host settles some.
	// 0 means DefaultPrefetch.
	Prefetch int
}

// Launch starts a plugin binary and completes the handshake. The process is
// not configured yet: call Configure. On error nothing is left running.
func Launch(ctx context.Context, cfg LaunchConfig) (*Client, error) {
	if cfg.Path == "" {
		return nil, errors.New("launch plugin: no binary path given")
	}
	path := cfg.Path
	if err := checkBinary(path); err != nil {
		return nil, err
	}
	if cfg.SHA256 != "" {
		if err := checkSHA256(path, cfg.SHA256); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("launch plugin %s: %w", path, err)
	}

	logger := cfg.Logger
	if logger == nil {
		logger = hclog.Default()
	}
	maxSize := cfg.MaxMessageSize
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	prefetch := cfg.Prefetch
	if prefetch <= 0 {
		prefetch = DefaultPrefetch
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}

	level := logger.GetLevel()
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	env := make([]string, 0, len(inheritedEnv)+2+len(cfg.Env))
	for _, k := range inheritedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	env = append(env,
		EnvLogLevel+"="+level.String(),
		EnvMaxMessageSize+"="+strconv.Itoa(maxSize),
	)
	env = append(env, cfg.Env...)

	l := &launcher{path: path, env: env}
	tail := &tailBuffer{max: stderrTailSize}
	limit := grpcLimit(maxSize)
	pc := plugin.NewClient(&plugin.ClientConfig{
		UnixSocketConfig: l.socketConfig(),
		RunnerFunc:       l.run,
		HandshakeConfig:  handshake(),
		VersionedPlugins: pluginSets(nil),
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           pluginLogger{logger},
		AutoMTLS:         cfg.AutoMTLS,
		StartTimeout:     timeout,
		Stderr:           tail,
		GRPCDialOptions:  dialOptions(limit),
	})
	proto, err := pc.Client()
	if err != nil {
		exited, status := l.exitStatus() // before Kill, which ends the process
		pc.Kill()
		l.cleanup()
		return nil, launchError(path, timeout, err, tail.String(), exited, status)
	}
	raw, err := proto.Dispense(pluginSetName)
	if err != nil {
		pc.Kill()
		l.cleanup()
		return nil, fmt.Errorf("launch plugin %s: %w", path, err)
	}
	rc := raw.(*remoteConn)
	c := &Client{
		pc: pc, conn: rc.conn, gbroker: rc.broker, base: pluginv1.NewPluginClient(rc.conn),
		path: path, name: filepath.Base(path), logger: logger,
		maxSize: maxSize, prefetch: prefetch, host: cfg.Host, launch: l,
		stopped: make(chan struct{}),
	}
	c.pid = l.pid()
	return c, nil
}

func checkBinary(path string) error {
	return execfile.Explain("plugin binary", path, "check plugin and plugin_dir in taskiq.hcl")
}

func checkSHA256(path, want string) error {
	want = strings.ToLower(strings.TrimSpace(want))
	if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("sha256 pin %q for plugin %s is not a SHA-256 in hex (64 characters); compute it with sha256sum %s", want, path, path)
	}
	got, err := execfile.SHA256(path)
	if err != nil {
		return fmt.Errorf("checksum plugin %s: %w", path, err)
	}
	if got != want {
		return fmt.Errorf("%w: %s has sha256 %s, taskiq.hcl pins %s; rebuild or reinstall the plugin, or update the sha256 pin if the new binary is trusted",
			ErrChecksumMismatch, path, got, want)
	}
	return nil
}

// launchError turns go-plugin's start-up errors into ones that say what to do.
// exited and status say whether the process had ended when the start failed.
//
// go-plugin v1.8 reports every handshake failure as an errors.New or a
// fmt.Errorf without %w: no sentinel, no type. What can be known another way
// is: the process exited (the runner saw it end; go-plugin's "plugin exited
// before we could connect" comes only after that). The rest is matched on
// go-plugin's text, each case saying why.
func launchError(path string, timeout time.Duration, err error, stderr string, exited bool, status error) error {
	msg := err.Error()
	if stderr != "" {
		stderr = "\nplugin stderr (last lines):\n" + stderr
	}
	// go-plugin's "Unrecognized remote plugin message: <line>" quotes the
	// first line the binary printed; an empty line means stdout closed
	// without one, which is how an early exit shows before it is reaped.
	printedJunk := strings.Contains(msg, "Unrecognized remote plugin message") &&
		!strings.Contains(msg, "Failed to read any lines from plugin's stdout")
	switch {
	// A version mismatch exists only as text (go-plugin formats the versions
	// into the message); the process may be alive or gone.
	case strings.Contains(msg, "incompatible API version"), strings.Contains(msg, "incompatible core API version"):
		return fmt.Errorf("%w: %s speaks another plugin protocol version (%s); this host speaks taskiq plugin protocol %d: rebuild the plugin against this version of github.com/taskiq-go/taskiq/plugin/sdk",
			ErrIncompatiblePlugin, path, firstLine(msg), ProtocolVersion)
	// A binary that printed something else and then exited is not a plugin,
	// whether or not its exit was seen yet: this case comes before the exit
	// check so the answer does not depend on that race.
	case printedJunk, strings.Contains(msg, "unsupported plugin protocol"):
		return fmt.Errorf("%w: %s is not a taskiq-go plugin: it did not answer the plugin handshake (%s); a plugin calls sdk.Serve from main%s",
			ErrIncompatiblePlugin, path, firstLine(msg), stderr)
	// The text case: stdout closed without a line, the exit not reaped yet.
	case exited, strings.Contains(msg, "Failed to read any lines from plugin's stdout"):
		how := ""
		if status != nil {
			how = " (" + status.Error() + ")"
		}
		return fmt.Errorf("plugin %s exited during start-up%s; is it a taskiq-go plugin built with plugin/sdk?%s", path, how, stderr)
	// go-plugin's StartTimeout expiring has no type either; the process is
	// still running (it is killed after this).
	case strings.Contains(msg, "timeout while waiting"):
		return fmt.Errorf("plugin %s did not complete the plugin handshake within %s; is it a taskiq-go plugin, and is the machine overloaded?%s", path, timeout, stderr)
	}
	return fmt.Errorf("start plugin %s: %w%s", path, err, stderr)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// tailBuffer keeps the last bytes written to it: a plugin's stderr, quoted
// when it fails to start.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String returns the kept text, starting at a line boundary.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.buf)
	if len(t.buf) >= t.max {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	return strings.TrimSpace(s)
}

// ErrChecksumMismatch is returned by Launch when the plugin binary does not
// match the pinned SHA-256.
var ErrChecksumMismatch = errors.New("plugin binary checksum mismatch")

// ErrIncompatiblePlugin is returned by Launch when the binary is not a
// taskiq-go plugin or speaks another protocol version.
var ErrIncompatiblePlugin = errors.New("incompatible plugin")
