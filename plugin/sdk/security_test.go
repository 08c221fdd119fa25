package sdk_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/taskiq-go/taskiq/internal/config"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// These tests check the security promises of DESIGN.md §6 end to end, with
// the fake plugin as a real process: secrets stay out of everything a user
// or a log sees, plugins start with a minimal environment, and AutoMTLS
// really guards the plugin's socket.

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// processEnv reads the environment a process was started with.
func processEnv(t *testing.T, pid int) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	require.NoError(t, err)
	env := map[string]string{}
	for _, kv := range strings.Split(string(raw), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

func requireLinux(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc to look inside the plugin process")
	}
}

// TestPluginEnvironmentIsMinimal: a plugin gets PATH and the few variables
// the SDK allows, the variables the host passes on purpose, and nothing else
// of the host's environment, so a secret exported for the host does not leak
// into third-party plugin code.
func TestPluginEnvironmentIsMinimal(t *testing.T) {
	requireLinux(t)
	// t.Setenv: this test cannot run in parallel, which is the point — the
	// canaries are in this process's environment while the plugin starts.
	t.Setenv("TASKIQ_SECURITY_CANARY", "must-not-leak")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "must-not-leak-either")
	require.NotEmpty(t, os.Getenv("PATH"), "the test needs a PATH to check that it is passed on")

	c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"env"}`, sdktest.WithEnv("TASKIQ_GIVEN=on-purpose"))
	_, err := c.Info(testCtx(t))
	require.NoError(t, err, "the plugin runs with its minimal environment")
	env := processEnv(t, c.Pid())

	require.NotContains(t, env, "TASKIQ_SECURITY_CANARY")
	require.NotContains(t, env, "AWS_SECRET_ACCESS_KEY")
	require.Equal(t, os.Getenv("PATH"), env["PATH"], "PATH is inherited")
	require.Equal(t, "on-purpose", env["TASKIQ_GIVEN"], "LaunchConfig.Env reaches the plugin")
	require.Equal(t, sdk.MagicCookieValue, env[sdk.MagicCookieKey])

	// Everything present is on purpose: the inherited basics, the SDK's and
	// go-plugin's own variables, and what the host passed.
	allowed := map[string]bool{"PATH": true, "HOME": true, "TMPDIR": true, "LANG": true, "TZ": true, "GOCOVERDIR": true,
		"TASKIQ_GIVEN": true, sdktest.EnvPlugin: true}
	for k := range env {
		if allowed[k] || strings.HasPrefix(k, "TASKIQ_PLUGIN_") || strings.HasPrefix(k, "PLUGIN_") {
			continue
		}
		t.Errorf("the plugin inherited %s from the host", k)
	}
}

// TestSensitiveValueNeverShown takes a taskiq.hcl whose plugin config holds
// a sensitive value through everything that shows config to a person: the
// diagnostics of the host and of the plugin (compact and with snippets), the
// plugin's schema as `taskiq plugins info` gets it, the redacted config, and
// every log line of host and plugin at trace level.
func TestSensitiveValueNeverShown(t *testing.T) {
	t.Parallel()
	const secret = "pa55-Wr0d-3f9c1e"
	dir := t.TempDir()
	src := fmt.Sprintf(`broker "default" {
  plugin = %q
  config {
    queue           = "secure"
    password        = "%s"
    max_outstanding = -1
    stats_file      = 42
  }
}
`, testExe(t), secret)
	path := filepath.Join(dir, "taskiq.hcl")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
	file, diags := config.Load(path)
	require.False(t, diags.HasErrors(), config.FormatDiagnostics(diags))
	block, ok := file.Broker("default")
	require.True(t, ok)

	logs := &lockedBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Output: logs, Level: hclog.Trace})
	c := sdktest.LaunchBinary(t, block.Path, "", "",
		sdktest.WithEnv(sdktest.EnvPlugin+"=1", sdk.EnvLogLevel+"=trace"), sdktest.WithLogger(logger))
	ctx := testCtx(t)
	info, err := c.Info(ctx)
	require.NoError(t, err)
	role, ok := info.Role(sdk.KindBroker)
	require.True(t, ok)
	pw, ok := role.Schema.Attribute("password")
	require.True(t, ok)
	require.True(t, pw.Sensitive, "the sensitive flag crosses the plugin boundary")

	raw, diags := config.DecodePluginConfig(block, role.Schema)
	require.False(t, diags.HasErrors(), config.FormatDiagnostics(diags))
	require.Contains(t, string(raw), secret, "the plugin itself gets the secret")
	errs, err := c.Configure(ctx, sdk.KindBroker, block.Name, raw)
	require.NoError(t, err)
	require.NotEmpty(t, errs, "max_outstanding = -1 is rejected by the plugin")
	pdiags := config.PluginDiagnostics(block, errs)

	// A host-side type error next to the secret, too.
	badSchema := role.Schema
	badSchema.Attributes = append([]sdk.Attribute(nil), role.Schema.Attributes...)
	for i := range badSchema.Attributes {
		if badSchema.Attributes[i].Name == "password" {
			badSchema.Attributes[i].Type = sdk.TypeNumber // the string no longer fits
		}
	}
	_, tdiags := config.DecodePluginConfig(block, badSchema)
	require.True(t, tdiags.HasErrors(), "a sensitive value of the wrong type is an error")
	// DecodePluginConfig with the real schema last, so the block's secrets
	// are those of the real decode again.
	_, _ = config.DecodePluginConfig(block, role.Schema)

	var shown bytes.Buffer
	all := append(append(append(hcl.Diagnostics{}, pdiags...), tdiags...), diags...)
	shown.WriteString(config.FormatDiagnostics(all))
	require.NoError(t, config.WriteDiagnostics(&shown, file.Sources(), all))
	infoJSON, err := json.Marshal(info)
	require.NoError(t, err)
	shown.Write(infoJSON)
	var values map[string]any
	require.NoError(t, json.Unmarshal(raw, &values))
	redacted, err := json.Marshal(role.Schema.Redact(values))
	require.NoError(t, err)
	shown.Write(redacted)
	require.NoError(t, c.Close(ctx))

	require.NotContains(t, shown.String(), secret, "output shown to the user:\n%s", shown.String())
	require.NotContains(t, logs.String(), secret, "host and plugin logs:\n%s", logs.String())
	// The checks above can fail: the output does show the rest of the file.
	require.Contains(t, shown.String(), "max_outstanding = -1", "the snippet of the neighbouring line")
	require.Contains(t, shown.String(), `"queue":"secure"`, "the redacted config keeps other values")
}

// listeningSocket finds the unix socket the plugin process pid listens on,
// through /proc: the socket go-plugin serves gRPC on.
func listeningSocket(t *testing.T, pid int) string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	f, err := os.Open("/proc/net/unix")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Num RefCount Protocol Flags Type St Inode Path
		fields := strings.Fields(sc.Text())
		if len(fields) >= 8 && inodes[fields[6]] && fields[3] == "00010000" { // __SO_ACCEPTCON: listening
			return fields[7]
		}
	}
	t.Fatalf("no listening unix socket found for plugin pid %d", pid)
	return ""
}

// plainInfo calls Info on the plugin's socket without TLS, as a local
// process that is not the host would.
func plainInfo(t *testing.T, socket string) error {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = pluginv1.NewPluginClient(conn).Info(ctx, &pluginv1.InfoRequest{})
	return err
}

// TestAutoMTLS: with AutoMTLS the host kicks, listens and settles over the
// mutual-TLS connection, and a local client without the host's certificate
// cannot talk to the plugin; without it, the same client can (so the check
// is not vacuous).
func TestAutoMTLS(t *testing.T) {
	t.Parallel()
	requireLinux(t)
	c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"mtls"}`,
		sdktest.WithLaunchConfig(func(lc *sdk.LaunchConfig) { lc.AutoMTLS = true }))
	ctx := testCtx(t)
	b := c.Broker()
	require.NoError(t, b.Kick(ctx, outgoing(3, "mtls")))
	s, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	defer s.Close()
	ds := recvN(t, ctx, s, 3)
	for i, d := range ds {
		require.Equal(t, fmt.Sprintf(`{"task_id":"mtls-%d"}`, i), string(d.Body))
	}
	require.NoError(t, s.Settle(ctx, acks(ds)))

	env := processEnv(t, c.Pid())
	require.NotEmpty(t, env["PLUGIN_CLIENT_CERT"], "the plugin was given the host's client certificate")
	require.Error(t, plainInfo(t, listeningSocket(t, c.Pid())), "a client without the host's certificate must be refused")

	plain := sdktest.Launch(t, sdk.KindBroker, `{"queue":"plain"}`)
	require.NoError(t, plainInfo(t, listeningSocket(t, plain.Pid())), "control: without AutoMTLS the same client gets through")
}

// TestPluginSocketsArePrivateUnderAnyUmask: under umask 000 the plugin's
// socket is still 0600, in a directory of mode 0700 that also holds the
// host's socket for Host callbacks, and the directory is gone once the
// plugin is stopped. Before, the sockets
// were made in the shared temp directory with mode 0777 less the umask, and
// any local user could call Broker.Kick. Not parallel: the umask is the
// process's.
func TestPluginSocketsArePrivateUnderAnyUmask(t *testing.T) {
	requireLinux(t)
	old := syscall.Umask(0)
	restored := false
	restore := func() {
		if !restored {
			syscall.Umask(old)
			restored = true
		}
	}
	defer restore()

	host := &fakeHost{kicks: make(chan kickCall, 4)}
	c := sdktest.Launch(t, sdk.KindMiddleware, `{}`, sdktest.WithHost(host))
	// A callback makes the host listen on its own socket for the plugin.
	mw := c.Middleware([]sdk.Hook{sdk.HookPreSend}).(sdk.PreSender)
	require.NoError(t, mw.PreSend(testCtx(t), &wire.Message{TaskID: "t", TaskName: "callback"}))
	<-host.kicks
	restore()

	socket := listeningSocket(t, c.Pid())
	mode := func(path string) os.FileMode {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		return fi.Mode()
	}
	require.Equal(t, os.ModeSocket|0o600, mode(socket), "the plugin's socket")
	dir := filepath.Dir(socket)
	require.Equal(t, os.ModeDir|0o700, mode(dir), "the socket's directory")
	require.Equal(t, dir, processEnv(t, c.Pid())["PLUGIN_UNIX_SOCKET_DIR"])
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "the plugin's socket and the host's, for Host callbacks")

	require.NoError(t, c.Close(testCtx(t)))
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, fs.ErrNotExist, "the directory is removed when the plugin stops")
}
