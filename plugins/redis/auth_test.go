package taskiqredis

import (
	"context"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

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
			if mode == modeStream {
				_, err = b.Listen(ctxT(t), sdk.ListenRequest{})
				require.Error(t, err, "Listen could not create its group but reported success")
				require.ErrorContains(t, err, "WRONGPASS")
				require.NotContains(t, err.Error(), wrong)
			}
		})
	}
}

func rawTestConfig(t *testing.T, kv map[string]any) sdk.Config {
	e := &testEnv{}
	return e.config(t, kv)
}
