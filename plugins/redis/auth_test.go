package taskiqredis

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// TestWrongPasswordFailsKickAndListen guards against a batch that never
// reached Redis being taken for a success: go-redis reports a failed
// connection handshake (WRONGPASS) only as the pipeline's error, with no
// error on its commands. Kick must fail (else the message is silently
// lost), and so must Listen, with an error that names the problem and not
// the password.
func TestWrongPasswordFailsKickAndListen(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	mr.RequireUserAuth("taskiq", "right-pass")
	const wrong = "wrong-pass-81c3"
	for _, mode := range []string{modeStream, modeList} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			b, err := newBroker(context.Background(), rawTestConfig(t, map[string]any{
				"url": "redis://" + mr.Addr() + "/0", "username": "taskiq", "password": wrong, "mode": mode}))
			require.NoError(t, err)
			t.Cleanup(func() { _ = b.Close(context.Background()) })
			err = b.Kick(ctxT(t), []sdk.Outgoing{out("x")})
			require.Error(t, err, "a kick that never reached Redis reported success")
			require.ErrorContains(t, err, "WRONGPASS")
			require.ErrorContains(t, err, "check username and password")
			require.NotContains(t, err.Error(), wrong)
			_, err = b.Listen(ctxT(t), sdk.ListenRequest{})
			require.Error(t, err, "Listen could not reach Redis but reported success")
			require.ErrorContains(t, err, "WRONGPASS")
			require.NotContains(t, err.Error(), wrong)
		})
	}
}

func rawTestConfig(t *testing.T, kv map[string]any) sdk.Config {
	e := &testEnv{}
	return e.config(t, kv)
}

// TestWrongPasswordFailsConfigure: Configure checks the credentials with
// one PING, so a wrong password stops the worker at start with an error
// against the attribute ("authentication failed"), instead of a worker
// that retries opening its delivery stream forever. An unreachable Redis
// is not a configuration error: it may come up later.
func TestWrongPasswordFailsConfigure(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	mr.RequireUserAuth("taskiq", "right-pass")
	const wrong = "wrong-pass-5d2e"
	cfg := rawTestConfig(t, map[string]any{"url": "redis://" + mr.Addr() + "/0", "username": "taskiq", "password": wrong})
	p := Plugin()
	_, berr := p.Broker.New(context.Background(), cfg)
	_, rerr := p.ResultBackend.New(context.Background(), cfg)
	for role, err := range map[string]error{"broker": berr, "result backend": rerr} {
		require.Error(t, err, role)
		ces := sdk.ConfigErrors(err)
		require.Len(t, ces, 1, role)
		require.Equal(t, "password", ces[0].Attribute, role)
		require.Contains(t, ces[0].Message, "authentication failed", role)
		require.Contains(t, ces[0].Message, "WRONGPASS", role)
		require.NotContains(t, err.Error(), wrong, role)
	}

	ok := rawTestConfig(t, map[string]any{"url": "redis://" + mr.Addr() + "/0", "username": "taskiq", "password": "right-pass"})
	b, err := p.Broker.New(context.Background(), ok)
	require.NoError(t, err)
	require.NoError(t, b.Close(context.Background()))

	down := rawTestConfig(t, map[string]any{"url": "redis://127.0.0.1:1/0"})
	b, err = p.Broker.New(context.Background(), down)
	require.NoError(t, err, "Redis down at start is an outage, not a configuration error")
	require.NoError(t, b.Close(context.Background()))
}

// TestAuthFailureEndsStream: credentials that stop working while a worker
// listens (password rotated, user disabled) end the delivery stream with a
// permanent error (ErrAuthFailed, gRPC code Unauthenticated), where the
// listener used to retry forever without a word beyond a warning (in
// pub/sub mode, go-redis's message channel retried forever in silence).
// It is not an outage: the error does not wrap ErrUnavailable.
func TestAuthFailureEndsStream(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{modeStream, modeList, modePubSub} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			mr := miniredis.RunT(t)
			mr.RequireUserAuth("taskiq", "old-pass")
			b, err := newBroker(context.Background(), rawTestConfig(t, map[string]any{
				"url": "redis://" + mr.Addr() + "/0", "username": "taskiq", "password": "old-pass",
				"mode": mode, "block": "100ms"}))
			require.NoError(t, err)
			t.Cleanup(func() { _ = b.Close(context.Background()) })
			s := listen(t, b, sdk.ListenRequest{})
			mr.RequireUserAuth("taskiq", "rotated-pass")
			mr.Close() // drops the authenticated connections
			require.NoError(t, mr.Restart())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = s.Recv(ctx, 1)
			require.Error(t, err)
			require.NotErrorIs(t, err, context.DeadlineExceeded, "the listener kept retrying")
			require.ErrorIs(t, err, ErrAuthFailed)
			require.NotErrorIs(t, err, sdk.ErrUnavailable)
			require.Equal(t, codes.Unauthenticated, status.Code(err))
			require.NotContains(t, err.Error(), "old-pass")
		})
	}
}
