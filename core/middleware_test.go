package core_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

// misspelledStamp means to implement pre_execute, but its method is misspelled.
type misspelledStamp struct{}

func (misspelledStamp) PreExcute(context.Context, *wire.Message) error { return nil }

// wrongMessage has the pre_execute name with a message of another type.
type wrongMessage struct{}

func (wrongMessage) PreSend(context.Context, *wire.Message) error { return nil }
func (wrongMessage) PreExecute(context.Context, map[string]any) error {
	return nil
}

type preSendOnly struct{}

func (preSendOnly) PreSend(context.Context, *wire.Message) error { return nil }

// A middleware whose hooks would never run is refused by New, with its type
// in the error, rather than registered.
func TestWithMiddlewareRefusesValuesWithoutHooks(t *testing.T) {
	broker := core.WithBroker("default", inmemory.NewBroker(inmemory.BrokerOptions{}))
	for _, tc := range []struct {
		name string
		mw   sdk.Middleware
		want string
	}{
		{"a number", 42, "taskiq: WithMiddleware: middleware 2 of 2: invalid middleware: int implements no hook"},
		{"misspelled hook", misspelledStamp{}, "core_test.misspelledStamp: method PreExcute looks like hook PreExecute (pre_execute)"},
		{"hook with another signature", wrongMessage{}, "method PreExecute(context.Context, map[string]interface {}) error does not have the signature of hook PreExecute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := core.New(broker, core.WithMiddleware(preSendOnly{}, tc.mw))
			require.ErrorIs(t, err, sdk.ErrInvalidMiddleware)
			require.ErrorContains(t, err, tc.want)
		})
	}
	app, err := core.New(broker, core.WithMiddleware(preSendOnly{}))
	require.NoError(t, err)
	require.NoError(t, app.Close(context.Background()))
}
