package sdk_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

type goodMiddleware struct{}

func (goodMiddleware) PreSend(context.Context, *wire.Message) error { return nil }

// typoMiddleware means PreExecute but spells it PreExcute: without the
// check its hook would never run.
type typoMiddleware struct{}

func (typoMiddleware) PreSend(context.Context, *wire.Message) error   { return nil }
func (typoMiddleware) PreExcute(context.Context, *wire.Message) error { return nil }

// caseMiddleware spells a hook in another case.
type caseMiddleware struct{}

func (caseMiddleware) Postsave(context.Context, *wire.Message, *wire.Result) error { return nil }

// wrongSignature has the hook's name with a message of another type.
type wrongSignature struct{}

func (wrongSignature) PreSend(context.Context, *wire.Message) error { return nil }
func (wrongSignature) PreExecute(context.Context, string) error     { return nil }

// pointerHooks has its hook on the pointer type.
type pointerHooks struct{}

func (*pointerHooks) PostSend(context.Context, *wire.Message) error { return nil }

// listing declares its hooks with a Hooks method.
type listing struct {
	goodMiddleware
	hooks []sdk.Hook
}

func (l listing) Hooks() []sdk.Hook { return l.hooks }

// unrelated has exported methods far from every hook name.
type unrelated struct{ goodMiddleware }

func (unrelated) Configure() error { return nil }
func (unrelated) Name() string     { return "x" }

func TestCheckMiddleware(t *testing.T) {
	for _, tc := range []struct {
		name string
		mw   sdk.Middleware
		want []string // substrings of the error; none: valid
	}{
		{"one hook", goodMiddleware{}, nil},
		{"pointer to a value with hooks", &goodMiddleware{}, nil},
		{"other exported methods", unrelated{}, nil},
		{"pointer receiver, registered as pointer", &pointerHooks{}, nil},
		{"listed hooks it implements", listing{hooks: []sdk.Hook{sdk.HookPreSend}}, nil},
		{"nil", nil, []string{"nil middleware"}},
		{"a number", 42, []string{"int implements no hook", "PreSend, PostSend, PreExecute, OnError, PostExecute, PostSave"}},
		{"a struct with no methods", struct{}{}, []string{"struct {} implements no hook"}},
		{"misspelled hook", typoMiddleware{}, []string{"sdk_test.typoMiddleware", "method PreExcute looks like hook PreExecute (pre_execute)", "PreExecute(context.Context, *wire.Message) error"}},
		{"hook in another case", caseMiddleware{}, []string{"method Postsave looks like hook PostSave"}},
		{"hook name, other signature", wrongSignature{}, []string{"method PreExecute(context.Context, string) error does not have the signature of hook PreExecute (pre_execute): PreExecute(context.Context, *wire.Message) error"}},
		{"pointer receiver, registered as value", pointerHooks{}, []string{"hook post_send has a pointer receiver", "register a *sdk_test.pointerHooks"}},
		{"lists no hooks", listing{}, []string{"sdk_test.listing lists no hooks"}},
		{"lists an unknown hook", listing{hooks: []sdk.Hook{"pre_sned"}}, []string{`Hooks lists "pre_sned", which is not a hook`}},
		{"lists a hook it lacks", listing{hooks: []sdk.Hook{sdk.HookPreSend, sdk.HookPostSave}}, []string{"Hooks lists post_save, but there is no method PostSave(context.Context, *wire.Message, *wire.Result) error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sdk.CheckMiddleware(tc.mw)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, sdk.ErrInvalidMiddleware)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// The hooks' method names are far enough apart that none looks like a
// misspelling of another: a middleware with every hook passes.
func TestCheckMiddlewareAllHooks(t *testing.T) {
	require.NoError(t, sdk.CheckMiddleware(everyHook{}))
}

type everyHook struct{}

func (everyHook) PreSend(context.Context, *wire.Message) error                      { return nil }
func (everyHook) PostSend(context.Context, *wire.Message) error                     { return nil }
func (everyHook) PreExecute(context.Context, *wire.Message) error                   { return nil }
func (everyHook) OnError(context.Context, *wire.Message, *wire.Result, error) error { return nil }
func (everyHook) PostExecute(context.Context, *wire.Message, *wire.Result) error    { return nil }
func (everyHook) PostSave(context.Context, *wire.Message, *wire.Result) error       { return nil }

func TestAllHooksIsAFreshSlice(t *testing.T) {
	h := sdk.AllHooks()
	require.Equal(t, []sdk.Hook{sdk.HookPreSend, sdk.HookPostSend, sdk.HookPreExecute, sdk.HookOnError, sdk.HookPostExecute, sdk.HookPostSave}, h)
	h[0] = "changed"
	require.Equal(t, sdk.HookPreSend, sdk.AllHooks()[0])
}

// A middleware plugin whose value has a misspelled hook is refused when it
// is configured, with the problem as a diagnostic, instead of serving a
// hook that never runs.
func TestServeRefusesMisspelledMiddleware(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, "", "")
	diags, err := c.Configure(ctx, sdk.KindMiddleware, "typo", json.RawMessage(`{"misspelled": true}`))
	require.NoError(t, err)
	require.Len(t, diags, 1)
	require.Contains(t, diags[0].Message, "plugin taskiq-fake: invalid middleware: sdk_test.typoMiddleware: method PreExcute looks like hook PreExecute")

	diags, err = c.Configure(ctx, sdk.KindMiddleware, "fine", json.RawMessage(`{}`))
	require.NoError(t, err)
	require.Empty(t, diags)
}
