package core_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

// limitedBroker is an in-memory broker that declares a message size limit
// of its own, as a NATS broker does.
type limitedBroker struct {
	*inmemory.Broker
	max int
}

func (b limitedBroker) MaxMessageSize() int { return b.max }

func TestKickOverTheBrokersLimitIsRefused(t *testing.T) {
	t.Parallel()
	small := limitedBroker{inmemory.NewBroker(inmemory.BrokerOptions{}), 1024}
	b := setup(t, core.WithBroker("small", small, brokerCaps()...))
	task := core.MustTask[int](b.app, "big", func(s string) (int, error) { return len(s), nil })

	_, err := task.Kicker().WithBroker("small").Kiq(context.Background(), strings.Repeat("a", 2048))
	require.ErrorIs(t, err, sdk.ErrMessageTooLarge)
	require.ErrorContains(t, err, `over the limit of broker "small" (1024 bytes; the host's max_message_size is 16777216)`)
	require.NotErrorIs(t, err, core.ErrMaybeSent, "refused before it was sent")
	require.Equal(t, 0, small.Len(""))

	// Within the broker's limit it goes through; the default broker has none.
	_, err = task.Kicker().WithBroker("small").Kiq(context.Background(), "ok")
	require.NoError(t, err)
	require.Equal(t, 1, small.Len(""))
	_, err = task.Kiq(context.Background(), strings.Repeat("a", 2048))
	require.NoError(t, err)
}
