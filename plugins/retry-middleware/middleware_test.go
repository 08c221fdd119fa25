package retry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// fakeHost records kicks and answers capability questions.
type fakeHost struct {
	mu       sync.Mutex
	caps     []string
	capsErr  error
	kickErr  error
	kicks    []fakeKick
	capsAsks []string
}

type fakeKick struct {
	broker string
	msgs   []*wire.Message
}

func (h *fakeHost) Kick(_ context.Context, broker string, msgs []*wire.Message) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kickErr != nil {
		return h.kickErr
	}
	h.kicks = append(h.kicks, fakeKick{broker: broker, msgs: msgs})
	return nil
}

func (h *fakeHost) GetResult(context.Context, string) (*wire.Result, error) {
	return nil, errors.New("fakeHost: GetResult is not used by the retry middleware")
}

func (h *fakeHost) BrokerCapabilities(_ context.Context, broker string) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.capsAsks = append(h.capsAsks, broker)
	return h.caps, h.capsErr
}

func (h *fakeHost) kicked() []fakeKick {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]fakeKick(nil), h.kicks...)
}

// Interface guards
var _ sdk.Host = (*fakeHost)(nil)

type testBundle struct {
	host *fakeHost
	mw   *middleware
}

// setup builds the middleware through the plugin's factory with config (a
// JSON object, "" for none), against a host whose broker can delay.
func setup(t *testing.T, config string) *testBundle {
	t.Helper()
	host := &fakeHost{caps: []string{sdk.CapDelay, sdk.CapAckable}}
	mw, err := build(t, host, config)
	require.NoError(t, err)
	return &testBundle{host: host, mw: mw}
}

func build(t *testing.T, host sdk.Host, config string) (*middleware, error) {
	t.Helper()
	cfg := sdk.Config{Name: "retry", Raw: json.RawMessage(config)}
	if host != nil {
		cfg.Host = host
	}
	v, err := Plugin().Middleware.New(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	mw, ok := v.(*middleware)
	require.True(t, ok, "factory returns %T", v)
	return mw, nil
}

// failedTask is a failure as the host hands it over after the task crossed a
// process boundary: the result's error and the task error are the wire form.
func failedTask(err error) (*wire.Result, error) {
	we := wire.FromError(err)
	// A round trip through JSON, as between processes.
	b, _ := json.Marshal(we)
	var back wire.Error
	if jerr := json.Unmarshal(b, &back); jerr != nil {
		panic(jerr)
	}
	return &wire.Result{IsErr: true, Error: &back}, &back
}

func newMessage(labels map[string]any) *wire.Message {
	return &wire.Message{
		TaskID:   "5f1c0e7d9a2b4c6e8f0a1b2c3d4e5f60",
		TaskName: "billing:charge",
		Labels:   labels,
		Args:     []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`"eur"`)},
		Kwargs:   map[string]json.RawMessage{"round": json.RawMessage(`true`)},
	}
}

// roundTrip encodes and decodes a message as a broker would carry it.
func roundTrip(t *testing.T, m *wire.Message) *wire.Message {
	t.Helper()
	b, err := m.MarshalJSON()
	require.NoError(t, err)
	back, err := wire.DecodeMessage(b)
	require.NoError(t, err)
	return back
}

// TestRetryCountsAttempts runs a task that always fails: it is kicked again
// after attempts 1..max-1 with the same task id and an incremented _retries,
// and the last attempt dead-letters.
func TestRetryCountsAttempts(t *testing.T) {
	t.Parallel()
	for _, maxRetries := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprint(maxRetries), func(t *testing.T) {
			t.Parallel()
			b := setup(t, fmt.Sprintf(`{"max_retries": %d, "jitter": false}`, maxRetries))
			// Python writes every label as a string with its type.
			msg, err := wire.DecodeMessage([]byte(`{"task_id": "abc123", "task_name": "m:f",
				"labels": {"retry_on_error": "True", "delay": "30"},
				"labels_types": {"retry_on_error": 5, "delay": 4}, "args": [1], "kwargs": {}}`))
			require.NoError(t, err)

			for attempt := 1; ; attempt++ {
				require.LessOrEqual(t, attempt, maxRetries, "more attempts than max_retries")
				res, taskErr := failedTask(errors.New("boom"))
				got := b.mw.OnError(context.Background(), msg, res, taskErr)
				kicks := b.host.kicked()
				if attempt == maxRetries {
					reason, ok := sdk.DeadLetterReason(got)
					require.True(t, ok, "attempt %d: want a dead letter, got %v", attempt, got)
					want := fmt.Sprintf("retries exhausted after %d attempts: Error: boom", maxRetries)
					if maxRetries == 1 {
						want = "retries exhausted after 1 attempt: Error: boom"
					}
					require.Equal(t, want, reason)
					require.Len(t, kicks, maxRetries-1)
					break
				}
				require.ErrorIs(t, got, sdk.ErrNoResult, "attempt %d", attempt)
				require.Len(t, kicks, attempt)
				k := kicks[attempt-1]
				require.Equal(t, "", k.broker)
				require.Len(t, k.msgs, 1)
				next := roundTrip(t, k.msgs[0])
				require.Equal(t, "abc123", next.TaskID)
				require.Equal(t, "m:f", next.TaskName)
				retries, ok := next.LabelInt(wire.LabelRetries)
				require.True(t, ok)
				require.EqualValues(t, attempt, retries)
				delay, ok := next.LabelFloat(wire.LabelDelay)
				require.True(t, ok)
				require.Equal(t, (time.Second << (attempt - 1)).Seconds(), delay, "exponential backoff without jitter")
				require.Equal(t, msg.Args, next.Args)
				msg = next
			}
		})
	}
}

func TestRetryDoesNotChangeTheFailedMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	msg := newMessage(map[string]any{"retry_on_error": true, "_retries": int64(1)})
	res, taskErr := failedTask(errors.New("boom"))
	require.ErrorIs(t, b.mw.OnError(context.Background(), msg, res, taskErr), sdk.ErrNoResult)
	require.Equal(t, map[string]any{"retry_on_error": true, "_retries": int64(1)}, msg.Labels)
	require.Len(t, b.host.kicked(), 1)
	require.NotSame(t, msg, b.host.kicked()[0].msgs[0])
}

func TestRetryDelayWithinBounds(t *testing.T) {
	t.Parallel()
	for _, st := range []Strategy{Fixed, Linear, Exponential} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			b := setup(t, fmt.Sprintf(`{"backoff": %q, "delay": "2s", "max_delay": "9s", "max_retries": 10}`, st))
			b.mw.rnd = lockedRand(int64(len(st)))
			for prev := 0; prev < 9; prev++ {
				msg := newMessage(map[string]any{"retry_on_error": "true", "_retries": int64(prev)})
				res, taskErr := failedTask(errors.New("boom"))
				require.ErrorIs(t, b.mw.OnError(context.Background(), msg, res, taskErr), sdk.ErrNoResult)
				kicks := b.host.kicked()
				next := kicks[len(kicks)-1].msgs[0]
				upper := Backoff(st, 2*time.Second, 9*time.Second, prev+1, false, nil)
				delay, _ := next.LabelFloat(wire.LabelDelay) // absent only when the jitter drew 0
				require.GreaterOrEqual(t, delay, 0.0)
				require.LessOrEqual(t, delay, upper.Seconds(), "attempt %d", prev+1)
				require.LessOrEqual(t, delay, 9.0)
			}
		})
	}
}

func TestRetryMaxRetriesLabel(t *testing.T) {
	t.Parallel()
	b := setup(t, `{"max_retries": 10}`)
	// Attempt 2 of 2 (the label wins over the config): final.
	msg := newMessage(map[string]any{"retry_on_error": true, "max_retries": "2", "_retries": "1"})
	res, taskErr := failedTask(errors.New("boom"))
	err := b.mw.OnError(context.Background(), msg, res, taskErr)
	require.ErrorIs(t, err, sdk.ErrDeadLetter)
	require.Empty(t, b.host.kicked())

	// An unreadable label falls back to the config.
	msg = newMessage(map[string]any{"retry_on_error": true, "max_retries": "many", "_retries": "1"})
	require.ErrorIs(t, b.mw.OnError(context.Background(), msg, res, taskErr), sdk.ErrNoResult)
	require.Len(t, b.host.kicked(), 1)
}

func TestRetryHostileRetriesLabel(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	res, taskErr := failedTask(errors.New("boom"))
	msg := newMessage(map[string]any{"retry_on_error": true, "_retries": int64(math.MaxInt64)})
	require.ErrorIs(t, b.mw.OnError(context.Background(), msg, res, taskErr), sdk.ErrDeadLetter)
	require.Empty(t, b.host.kicked())
}

func TestRetryLabelGate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		config    string
		labels    map[string]any
		wantRetry bool
	}{
		{"label absent", "", map[string]any{}, false},
		{"no labels", "", nil, false},
		{"label false", "", map[string]any{"retry_on_error": "False"}, false},
		{"label true", "", map[string]any{"retry_on_error": "True"}, true},
		{"default on, label absent", `{"default_retry_label": true}`, nil, true},
		{"default on, label false", `{"default_retry_label": true}`, map[string]any{"retry_on_error": false}, false},
		{"default on, label unreadable", `{"default_retry_label": true}`, map[string]any{"retry_on_error": "maybe"}, true},
		{"default off, label unreadable", "", map[string]any{"retry_on_error": "maybe"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.config)
			res, taskErr := failedTask(errors.New("boom"))
			err := b.mw.OnError(context.Background(), newMessage(tt.labels), res, taskErr)
			if tt.wantRetry {
				require.ErrorIs(t, err, sdk.ErrNoResult)
				require.Len(t, b.host.kicked(), 1)
			} else {
				require.NoError(t, err, "a task that does not retry fails normally")
				require.Empty(t, b.host.kicked())
			}
		})
	}
}

func TestRetryStoreIntermediateResults(t *testing.T) {
	t.Parallel()
	b := setup(t, `{"store_intermediate_results": true}`)
	res, taskErr := failedTask(errors.New("boom"))
	msg := newMessage(map[string]any{"retry_on_error": true})
	require.NoError(t, b.mw.OnError(context.Background(), msg, res, taskErr))
	require.Len(t, b.host.kicked(), 1, "the retry is still kicked")
}

func TestRetryExhaustedWithoutDeadLetter(t *testing.T) {
	t.Parallel()
	b := setup(t, `{"dead_letter_on_exhaustion": false, "max_retries": 2}`)
	res, taskErr := failedTask(errors.New("boom"))
	msg := newMessage(map[string]any{"retry_on_error": true, "_retries": 1})
	require.NoError(t, b.mw.OnError(context.Background(), msg, res, taskErr))
	require.Empty(t, b.host.kicked())
}

// TimeoutError is a Go error type the filters name.
type TimeoutError struct{}

func (TimeoutError) Error() string { return "upstream timed out" }

func TestRetryFilters(t *testing.T) {
	t.Parallel()
	wrappedTimeout := fmt.Errorf("charge card: %w", TimeoutError{})
	tests := []struct {
		name      string
		config    string
		err       error
		wantRetry bool
	}{
		{"no filters", "", errors.New("x"), true},
		{"retry_on matches the error", `{"retry_on": ["TimeoutError"]}`, TimeoutError{}, true},
		{"retry_on matches a cause", `{"retry_on": ["TimeoutError"]}`, wrappedTimeout, true},
		{"retry_on with module", `{"retry_on": ["github.com/taskiq-go/taskiq/plugins/retry-middleware.TimeoutError"]}`, wrappedTimeout, true},
		{"retry_on misses", `{"retry_on": ["ConnectionError"]}`, wrappedTimeout, false},
		{"no_retry_on matches a cause", `{"no_retry_on": ["TimeoutError"]}`, wrappedTimeout, false},
		{"no_retry_on misses", `{"no_retry_on": ["ValueError"]}`, wrappedTimeout, true},
		{"no_retry_on wins", `{"retry_on": ["TimeoutError"], "no_retry_on": ["Error"]}`, wrappedTimeout, false},
		{"NoRetry marker", "", NoRetry(TimeoutError{}), false},
		{"NoRetry marker wrapped", "", fmt.Errorf("charge: %w", NoRetry(errors.New("card declined"))), false},
		{"NoRetry beats retry_on", `{"retry_on": ["TimeoutError"]}`, NoRetry(wrappedTimeout), false},
		{"NoRetry without error", "", NoRetry(nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.config)
			res, taskErr := failedTask(tt.err)
			err := b.mw.OnError(context.Background(), newMessage(map[string]any{"retry_on_error": true}), res, taskErr)
			if tt.wantRetry {
				require.ErrorIs(t, err, sdk.ErrNoResult)
				require.Len(t, b.host.kicked(), 1)
			} else {
				require.NoError(t, err, "a refused retry is a normal failure, not a dead letter")
				require.Empty(t, b.host.kicked())
			}
		})
	}
}

// TestRetryNoRetryInProcess covers a host that runs the task in-process and
// hands over the Go error with no wire error in the result.
func TestRetryNoRetryInProcess(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	msg := newMessage(map[string]any{"retry_on_error": true})
	err := b.mw.OnError(context.Background(), msg, &wire.Result{IsErr: true}, fmt.Errorf("x: %w", NoRetry(errors.New("bad input"))))
	require.NoError(t, err)
	require.Empty(t, b.host.kicked())
}

// TestRetryPythonNoRetry: a Python task raising `class NoRetry(Exception)`
// opts out the same way.
func TestRetryPythonNoRetry(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	res, err := wire.DecodeResult([]byte(`{"is_err": true, "log": null, "return_value": null,
		"execution_time": 0.1, "labels": {}, "error": {"exc_type": "NoRetry", "exc_message": ["card declined"],
		"exc_module": "tasks", "exc_cause": null, "exc_context": null, "exc_suppress_context": false}}`))
	require.NoError(t, err)
	require.NoError(t, b.mw.OnError(context.Background(), newMessage(map[string]any{"retry_on_error": "True"}), res, res.Error))
	require.Empty(t, b.host.kicked())
}

// TestRetryNotCancelled: a cancelled task (exc_type TaskCancelledError)
// is never retried, though any other error with the same label would be.
func TestRetryNotCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	msg := newMessage(map[string]any{"retry_on_error": true})
	cancelled := &wire.Result{IsErr: true, Error: &wire.Error{ExcType: wire.ErrorTypeCancelled, ExcMessage: []any{"cancelled"}}}
	require.NoError(t, b.mw.OnError(context.Background(), msg, cancelled, cancelled.Error))
	require.Empty(t, b.host.kicked())

	other := &wire.Result{IsErr: true, Error: &wire.Error{ExcType: "ValueError", ExcMessage: []any{"boom"}}}
	require.ErrorIs(t, b.mw.OnError(context.Background(), msg, other, other.Error), sdk.ErrNoResult)
	require.Len(t, b.host.kicked(), 1)
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		res    func() (*wire.Result, error)
		wantS  float64
		absent bool
	}{
		{"through the wire", func() (*wire.Result, error) {
			return failedTask(RetryAfter(90*time.Second, errors.New("429 too many requests")))
		}, 90, false},
		{"wrapped through the wire", func() (*wire.Result, error) {
			return failedTask(fmt.Errorf("call api: %w", RetryAfter(1500*time.Millisecond, nil)))
		}, 1.5, false},
		{"in process", func() (*wire.Result, error) {
			return &wire.Result{IsErr: true}, RetryAfter(2*time.Minute, errors.New("later"))
		}, 120, false},
		{"python, seconds as a string", func() (*wire.Result, error) {
			we := &wire.Error{ExcType: "RetryAfter", ExcMessage: []any{"slow down", "7.25"}, ExcModule: "tasks"}
			return &wire.Result{IsErr: true, Error: we}, we
		}, 7.25, false},
		{"zero means now", func() (*wire.Result, error) {
			return failedTask(RetryAfter(0, errors.New("again")))
		}, 0, true},
		{"negative means now", func() (*wire.Result, error) {
			return failedTask(RetryAfter(-time.Second, errors.New("again")))
		}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A long max_delay would not matter; a short one must not cap
			// the delay the task asked for.
			b := setup(t, `{"delay": "1s", "max_delay": "2s"}`)
			res, taskErr := tt.res()
			msg := newMessage(map[string]any{"retry_on_error": true, "delay": 5.0})
			require.ErrorIs(t, b.mw.OnError(context.Background(), msg, res, taskErr), sdk.ErrNoResult)
			kicks := b.host.kicked()
			require.Len(t, kicks, 1)
			next := roundTrip(t, kicks[0].msgs[0])
			d, ok := next.LabelFloat(wire.LabelDelay)
			if tt.absent {
				require.False(t, ok, "a zero delay drops the delay label the message was first kicked with")
				return
			}
			require.True(t, ok)
			require.InDelta(t, tt.wantS, d, 1e-9)
		})
	}
}

func TestRetryAfterStillCountsAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, `{"max_retries": 2}`)
	res, taskErr := failedTask(RetryAfter(time.Second, errors.New("429")))
	msg := newMessage(map[string]any{"retry_on_error": true, "_retries": 1})
	require.ErrorIs(t, b.mw.OnError(context.Background(), msg, res, taskErr), sdk.ErrDeadLetter)
	require.Empty(t, b.host.kicked())
}

func TestRetryBrokerWithoutDelay(t *testing.T) {
	t.Parallel()
	host := &fakeHost{caps: []string{sdk.CapAckable}}
	_, err := build(t, host, `{"broker": "fast"}`)
	require.Error(t, err)
	ces := sdk.ConfigErrors(err)
	require.Len(t, ces, 1)
	require.Equal(t, "delay", ces[0].Attribute)
	require.Equal(t, `the broker "fast" has no "delay" capability, so retries would run immediately; `+
		`set delay = "0s" to accept immediate retries, or use a broker with delay`, ces[0].Message)
	require.Equal(t, []string{"fast"}, host.capsAsks)

	_, err = build(t, host, "")
	require.ErrorContains(t, err, `the default broker has no "delay" capability`)

	// Accepting immediate retries works, and they carry no delay, even when
	// the task asks for one.
	mw, err := build(t, host, `{"delay": "0s", "broker": "fast"}`)
	require.NoError(t, err)
	res, taskErr := failedTask(RetryAfter(time.Minute, errors.New("429")))
	msg := newMessage(map[string]any{"retry_on_error": true, "delay": 3})
	require.ErrorIs(t, mw.OnError(context.Background(), msg, res, taskErr), sdk.ErrNoResult)
	kicks := host.kicked()
	require.Len(t, kicks, 1)
	require.Equal(t, "fast", kicks[0].broker)
	_, ok := kicks[0].msgs[0].Labels[wire.LabelDelay]
	require.False(t, ok)
}

func TestRetryBrokerCapabilitiesFail(t *testing.T) {
	t.Parallel()
	host := &fakeHost{capsErr: errors.New(`no broker named "nope"`)}
	_, err := build(t, host, `{"broker": "nope"}`)
	ces := sdk.ConfigErrors(err)
	require.Len(t, ces, 1)
	require.Equal(t, "broker", ces[0].Attribute)
	require.Contains(t, ces[0].Message, `cannot read the capabilities of the broker "nope"`)
}

func TestRetryKickFailurePropagates(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	kickErr := errors.New("broker unavailable")
	b.host.kickErr = kickErr
	res, taskErr := failedTask(errors.New("boom"))
	err := b.mw.OnError(context.Background(), newMessage(map[string]any{"retry_on_error": true}), res, taskErr)
	require.ErrorIs(t, err, kickErr)
	require.NotErrorIs(t, err, sdk.ErrNoResult)
	require.NotErrorIs(t, err, sdk.ErrDeadLetter)
	require.ErrorContains(t, err, "kick attempt 2 of 3 of task 5f1c0e7d9a2b4c6e8f0a1b2c3d4e5f60 through the default broker")
}

func TestRetryWithoutHost(t *testing.T) {
	t.Parallel()
	mw, err := build(t, nil, "")
	require.NoError(t, err, "the plugin can be built without a host (plugin info)")
	res, taskErr := failedTask(errors.New("boom"))
	err = mw.OnError(context.Background(), newMessage(map[string]any{"retry_on_error": true}), res, taskErr)
	require.ErrorContains(t, err, "without a host connection")
	require.NotErrorIs(t, err, sdk.ErrNoResult)
}

func TestRetryConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t, `{"max_retries": 100}`)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			msg := newMessage(map[string]any{"retry_on_error": true, "_retries": int64(i)})
			msg.TaskID = fmt.Sprint(i)
			res, taskErr := failedTask(errors.New("boom"))
			if err := b.mw.OnError(context.Background(), msg, res, taskErr); !errors.Is(err, sdk.ErrNoResult) {
				t.Errorf("task %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	kicks := b.host.kicked()
	require.Len(t, kicks, 50)
	seen := map[string]int64{}
	for _, k := range kicks {
		r, _ := k.msgs[0].LabelInt(wire.LabelRetries)
		seen[k.msgs[0].TaskID] = r
	}
	for i := range 50 {
		require.EqualValues(t, i+1, seen[fmt.Sprint(i)])
	}
}

func TestPlugin(t *testing.T) {
	t.Parallel()
	p := Plugin()
	require.Equal(t, "taskiq-retry-middleware", p.Name)
	require.Equal(t, []sdk.Hook{sdk.HookOnError}, p.Hooks)
	require.Nil(t, p.Broker)
	require.Nil(t, p.ResultBackend)
	mw, err := p.Middleware.New(context.Background(), sdk.Config{})
	require.NoError(t, err)
	require.Equal(t, []sdk.Hook{sdk.HookOnError}, sdk.HooksOf(mw), "the value implements exactly the declared hooks")
}

// lockedRand is a seeded jitter source safe for concurrent use.
func lockedRand(seed int64) func() float64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(uint64(seed), 99))
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Float64()
	}
}
