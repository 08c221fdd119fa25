package sdk

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

type closingPreSender struct{ closed *atomic.Int64 }

func (closingPreSender) PreSend(context.Context, *wire.Message) error { return nil }
func (m closingPreSender) Close() error                               { m.closed.Add(1); return nil }

// A middleware lacking a hook that Plugin.Hooks declares would fail every
// call of that hook: Configure refuses it, closes it, and stays unconfigured.
func TestConfigureRefusesMiddlewareLackingDeclaredHook(t *testing.T) {
	var closed atomic.Int64
	s := newPluginServer(Plugin{
		Name:  "taskiq-declares",
		Hooks: []Hook{HookPreSend, HookPostSave},
		Middleware: &Factory[Middleware]{New: func(context.Context, Config) (Middleware, error) {
			return closingPreSender{&closed}, nil
		}},
	}, nil, 0)
	resp, err := s.configure(context.Background(), &pluginv1.ConfigureRequest{Kind: string(KindMiddleware), ConfigJson: []byte("{}")})
	require.NoError(t, err)
	require.Len(t, resp.Diagnostics, 1)
	require.Contains(t, resp.Diagnostics[0].Summary, "plugin taskiq-declares: invalid middleware: Plugin.Hooks declares post_save, which sdk.closingPreSender does not implement")
	require.Equal(t, int64(1), closed.Load(), "the refused middleware is closed")
	_, err = s.configured(KindMiddleware)
	require.ErrorIs(t, err, errNotConfigured)

	s.p.Hooks = []Hook{HookPreSend}
	resp, err = s.configure(context.Background(), &pluginv1.ConfigureRequest{Kind: string(KindMiddleware), ConfigJson: []byte("{}")})
	require.NoError(t, err)
	require.Empty(t, resp.Diagnostics)
	_, err = s.configured(KindMiddleware)
	require.NoError(t, err)
}
