package sdk_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// A Client hands out one shim per role: the host asks for the broker on
// every call, and a new shim per call would cost allocations and, for the
// result backend, split the waiters over several watch streams.
func TestClientReusesRoleShims(t *testing.T) {
	t.Parallel()
	c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"shims"}`)
	require.Same(t, c.Broker(), c.Broker())
	require.Same(t, c.ResultBackend(), c.ResultBackend())

	pre := []sdk.Hook{sdk.HookPreSend}
	require.Same(t, c.Middleware(pre), c.Middleware([]sdk.Hook{sdk.HookPreSend}))
	other := c.Middleware([]sdk.Hook{sdk.HookPostSave})
	require.NotSame(t, c.Middleware(pre), other, "a middleware shim lists the hooks it was asked for")
	require.Equal(t, []sdk.Hook{sdk.HookPostSave}, other.(sdk.HookLister).Hooks())
}

func TestClientReusesTaskModuleUntilClosed(t *testing.T) {
	t.Parallel()
	c := launchModule(t)
	m := c.Tasks(4)
	require.Same(t, m, c.Tasks(4))
	require.NotSame(t, m, c.Tasks(8), "another window is another stream")
	require.Same(t, c.Tasks(0), c.Tasks(sdk.DefaultTaskWindow))

	require.NoError(t, m.(interface{ Close(context.Context) error }).Close(testCtx(t)))
	_, err := m.Execute(testCtx(t), taskMsg("add", 1, 2))
	require.ErrorIs(t, err, sdk.ErrClosed)

	again := c.Tasks(4)
	require.NotSame(t, m, again, "a closed module is replaced")
	closeModule(t, again)
	ret, err := again.Execute(testCtx(t), taskMsg("add", 1, 2))
	require.NoError(t, err)
	require.JSONEq(t, "3", string(ret))
}
