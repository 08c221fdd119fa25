package retry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

func TestMarkersArePlainErrors(t *testing.T) {
	t.Parallel()
	nr := NoRetry(io.EOF)
	require.ErrorIs(t, nr, io.EOF)
	require.Equal(t, "EOF", nr.Error())
	var nre *NoRetryError
	require.ErrorAs(t, fmt.Errorf("read: %w", nr), &nre)
	require.Equal(t, "no retry", NoRetry(nil).Error())

	ra := RetryAfter(time.Minute, io.EOF)
	require.ErrorIs(t, ra, io.EOF)
	require.Equal(t, "retry after 1m0s: EOF", ra.Error())
	var rae *RetryAfterError
	require.ErrorAs(t, fmt.Errorf("read: %w", ra), &rae)
	require.Equal(t, time.Minute, rae.Delay)
	require.Equal(t, "retry after 1s", RetryAfter(time.Second, nil).Error())
	require.Equal(t, time.Duration(0), RetryAfter(-time.Second, nil).(*RetryAfterError).Delay)
}

func TestMarkersWireForm(t *testing.T) {
	t.Parallel()
	const module = "github.com/taskiq-go/taskiq/plugins/retry-middleware"

	nr := wire.FromError(NoRetry(errors.New("card declined")))
	require.Equal(t, "NoRetry", nr.ExcType)
	require.Equal(t, module, nr.ExcModule)
	require.Equal(t, []any{"card declined"}, nr.ExcMessage)
	require.NotNil(t, nr.ExcCause)
	require.Equal(t, "Error", nr.ExcCause.ExcType)

	ra := wire.FromError(RetryAfter(1500*time.Millisecond, errors.New("429")))
	require.Equal(t, "RetryAfter", ra.ExcType)
	require.Equal(t, module, ra.ExcModule)
	require.Equal(t, []any{"429", 1.5}, ra.ExcMessage)

	// What another process reads back.
	b, err := json.Marshal(ra)
	require.NoError(t, err)
	var back wire.Error
	require.NoError(t, json.Unmarshal(b, &back))
	d, ok := retryAfterDelay(causeChain(&back))
	require.True(t, ok)
	require.Equal(t, 1500*time.Millisecond, d)
}

func TestSecondsToDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   any
		want time.Duration
		ok   bool
	}{
		{1.5, 1500 * time.Millisecond, true},
		{int64(2), 2 * time.Second, true},
		{2, 2 * time.Second, true},
		{json.Number("0.25"), 250 * time.Millisecond, true},
		{" 3 ", 3 * time.Second, true},
		{-4.0, 0, true},
		{1e300, time.Duration(1<<63 - 1), true},
		{"soon", 0, false},
		{nil, 0, false},
		{[]any{1}, 0, false},
	}
	for _, tt := range tests {
		got, ok := secondsToDuration(tt.in)
		require.Equal(t, tt.ok, ok, "%#v", tt.in)
		require.Equal(t, tt.want, got, "%#v", tt.in)
	}
}

func TestCauseChainIsBounded(t *testing.T) {
	t.Parallel()
	var e *wire.Error
	for range 1000 {
		e = &wire.Error{ExcType: "Deep", ExcCause: e}
	}
	require.Len(t, causeChain(e), maxChain)
	require.Empty(t, causeChain(nil))
}
