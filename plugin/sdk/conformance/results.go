package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// TestResultBackend runs the result backend conformance suite. launch must
// return a fresh result backend that goes through the plugin's real process
// boundary (use sdktest.Launch) and is closed when its test ends; backends
// of one run may share storage, since every subtest uses task ids of its
// own. caps are the capabilities the configured backend claims; subtests of
// capabilities it does not claim are skipped. The subtests run in parallel.
func TestResultBackend(t *testing.T, launch func(t *testing.T) sdk.ResultBackend, caps []string, opts ...Option) {
	s := &resultSuite{launch: launch, caps: caps, o: newOptions(opts)}
	s.run(t, "SetGetIsReady", nil, s.setGetIsReady)
	s.run(t, "NotFound", nil, s.notFound)
	s.run(t, "SetOverwrites", nil, s.setOverwrites)
	s.run(t, "BatchSet", nil, s.batchSet)
	s.run(t, "ResultSizeLimit", nil, s.sizeLimit)
	s.run(t, "ConcurrentSetGet", nil, s.concurrentSetGet)
	s.run(t, "Progress", []string{sdk.CapProgress}, s.progress)
	s.run(t, "WaitResult", []string{sdk.CapWait}, s.waitResult)
	s.run(t, "WaitResultRespectsContext", []string{sdk.CapWait}, s.waitRespectsContext)
	s.run(t, "TTL", nil, s.ttl)
	s.run(t, "Close", nil, s.close)
}

type resultSuite struct {
	launch func(t *testing.T) sdk.ResultBackend
	caps   []string
	o      options
}

type resultBundle struct {
	t      *testing.T
	rb     sdk.ResultBackend
	o      options
	caps   []string
	prefix string
}

func (s *resultSuite) run(t *testing.T, name string, need []string, f func(t *testing.T, r *resultBundle)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		skipUnclaimed(t, s.o, s.caps, name, need, "result backend")
		rb := s.launch(t)
		require.NotNil(t, rb, "the launch function returned no result backend")
		f(t, &resultBundle{t: t, rb: rb, o: s.o, caps: s.caps, prefix: "conf-" + randomHex(6)})
	})
}

func (r *resultBundle) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), r.o.timeout)
	r.t.Cleanup(cancel)
	return ctx
}

// id returns a task id unique to the subtest.
func (r *resultBundle) id(n int) string { return fmt.Sprintf("%s-%d", r.prefix, n) }

// body returns a stored result as the host writes it: wire.Result JSON.
func (r *resultBundle) body(value any) []byte {
	r.t.Helper()
	rv, err := json.Marshal(value)
	require.NoError(r.t, err)
	b, err := wire.EncodeResult(&wire.Result{ReturnValue: rv, ExecutionTime: 0.5, Labels: map[string]any{"conformance": true}})
	require.NoError(r.t, err)
	return b
}

func (r *resultBundle) requireResult(id string, want []byte) {
	r.t.Helper()
	got, err := r.rb.GetResult(r.ctx(), id)
	require.NoError(r.t, err, "get the result of task %s", id)
	require.Equal(r.t, string(want), string(got), "the result of task %s comes back byte for byte", id)
}

func (r *resultBundle) requireNotFound(id string) {
	r.t.Helper()
	_, err := r.rb.GetResult(r.ctx(), id)
	require.ErrorIs(r.t, err, sdk.ErrNotFound, "the result of task %s", id)
	ready, err := r.rb.IsReady(r.ctx(), id)
	require.NoError(r.t, err)
	require.False(r.t, ready, "IsReady of task %s", id)
}

// ---- subtests ----

func (s *resultSuite) setGetIsReady(t *testing.T, r *resultBundle) {
	id := r.id(1)
	r.requireNotFound(id)
	body := r.body(map[string]any{"sum": 3, "text": "ünïcode ☃"})
	require.NoError(t, r.rb.SetResults(r.ctx(), []sdk.StoredResult{{TaskID: id, Body: body}}))
	ready, err := r.rb.IsReady(r.ctx(), id)
	require.NoError(t, err)
	require.True(t, ready, "IsReady right after SetResults")
	r.requireResult(id, body)
	r.requireResult(id, body) // reading does not consume it (the default)
}

func (s *resultSuite) notFound(t *testing.T, r *resultBundle) {
	r.requireNotFound(r.id(404))
	if sdk.Has(r.caps, sdk.CapProgress) {
		_, err := r.rb.GetProgress(r.ctx(), r.id(404))
		require.ErrorIs(t, err, sdk.ErrNotFound, "progress of an unknown task")
	}
}

func (s *resultSuite) setOverwrites(t *testing.T, r *resultBundle) {
	id := r.id(1)
	require.NoError(t, r.rb.SetResults(r.ctx(), []sdk.StoredResult{{TaskID: id, Body: r.body("first")}}))
	second := r.body("second")
	require.NoError(t, r.rb.SetResults(r.ctx(), []sdk.StoredResult{{TaskID: id, Body: second}}))
	r.requireResult(id, second)
}

func (s *resultSuite) batchSet(t *testing.T, r *resultBundle) {
	const n = 200
	batch := make([]sdk.StoredResult, n)
	for i := range batch {
		batch[i] = sdk.StoredResult{TaskID: r.id(i), Body: r.body(i)}
	}
	require.NoError(t, r.rb.SetResults(r.ctx(), batch))
	for _, x := range batch {
		r.requireResult(x.TaskID, x.Body)
	}
	require.NoError(t, r.rb.SetResults(r.ctx(), nil), "an empty batch is fine")
}

func (s *resultSuite) sizeLimit(t *testing.T, r *resultBundle) {
	limit := r.o.maxMessageSize
	prefix := `{"is_err":false,"log":null,"return_value":"`
	suffix := `","execution_time":0,"labels":{},"error":null}`
	pad := limit - len(prefix) - len(suffix)
	require.GreaterOrEqual(t, pad, 0, "the size limit %d is too small for a result", limit)
	atLimit := []byte(prefix + strings.Repeat("r", pad) + suffix)
	id := r.id(1)
	require.NoError(t, r.rb.SetResults(r.ctx(), []sdk.StoredResult{{TaskID: id, Body: atLimit}}), "a result of exactly the size limit")
	r.requireResult(id, atLimit)

	over := append(append([]byte(prefix), strings.Repeat("r", pad+1)...), suffix...)
	err := r.rb.SetResults(r.ctx(), []sdk.StoredResult{{TaskID: r.id(2), Body: over}})
	require.ErrorIs(t, err, sdk.ErrMessageTooLarge, "a result one byte over the limit")
}

func (s *resultSuite) concurrentSetGet(t *testing.T, r *resultBundle) {
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := r.id(w*1000 + i)
				want := r.body([]int{w, i})
				if err := r.rb.SetResults(r.ctx(), []sdk.StoredResult{{TaskID: id, Body: want}}); err != nil {
					errs <- fmt.Errorf("set %s: %w", id, err)
					return
				}
				got, err := r.rb.GetResult(r.ctx(), id)
				if err != nil || string(got) != string(want) {
					errs <- fmt.Errorf("get %s right after set: %q, %v", id, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func (s *resultSuite) progress(t *testing.T, r *resultBundle) {
	id := r.id(1)
	_, err := r.rb.GetProgress(r.ctx(), id)
	require.ErrorIs(t, err, sdk.ErrNotFound, "progress before any report")

	report := func(state string, done int) []byte {
		b, err := json.Marshal(wire.Progress{State: state, Meta: map[string]any{"done": done}})
		require.NoError(t, err)
		return b
	}
	first := report(wire.StateStarted, 1)
	require.NoError(t, r.rb.SetProgress(r.ctx(), id, first))
	got, err := r.rb.GetProgress(r.ctx(), id)
	require.NoError(t, err)
	require.Equal(t, string(first), string(got))

	second := report("CUSTOM", 2)
	require.NoError(t, r.rb.SetProgress(r.ctx(), id, second))
	got, err = r.rb.GetProgress(r.ctx(), id)
	require.NoError(t, err)
	require.Equal(t, string(second), string(got), "the last progress report wins")

	// Progress is not a result.
	r.requireNotFound(id)
	body := r.body("done")
	require.NoError(t, r.rb.SetResults(r.ctx(), []sdk.StoredResult{{TaskID: id, Body: body}}))
	r.requireResult(id, body)
	got, err = r.rb.GetProgress(r.ctx(), id)
	require.NoError(t, err)
	require.Equal(t, string(second), string(got), "storing the result leaves the progress readable")
}

func (s *resultSuite) waiter(t *testing.T, r *resultBundle) sdk.ResultWaiter {
	w, ok := r.rb.(sdk.ResultWaiter)
	require.True(t, ok, "a result backend with capability wait implements sdk.ResultWaiter")
	return w
}

func (s *resultSuite) waitResult(t *testing.T, r *resultBundle) {
	w := s.waiter(t, r)

	// Already stored: returns at once.
	stored := r.id(1)
	body := r.body("early")
	require.NoError(t, r.rb.SetResults(r.ctx(), []sdk.StoredResult{{TaskID: stored, Body: body}}))
	got, err := w.WaitResult(r.ctx(), stored)
	require.NoError(t, err)
	require.Equal(t, string(body), string(got))

	// Stored while several callers wait.
	id := r.id(2)
	const waiters = 4
	type answer struct {
		body []byte
		err  error
	}
	answers := make(chan answer, waiters)
	for range waiters {
		go func() {
			b, err := w.WaitResult(r.ctx(), id)
			answers <- answer{b, err}
		}()
	}
	select {
	case a := <-answers:
		t.Fatalf("WaitResult returned before the result was stored: %q, %v", a.body, a.err)
	default:
	}
	late := r.body("late")
	require.NoError(t, r.rb.SetResults(r.ctx(), []sdk.StoredResult{{TaskID: id, Body: late}}))
	for range waiters {
		select {
		case a := <-answers:
			require.NoError(t, a.err)
			require.Equal(t, string(late), string(a.body))
		case <-time.After(r.o.timeout):
			t.Fatalf("WaitResult did not return within %s after the result was stored", r.o.timeout)
		}
	}
}

func (s *resultSuite) waitRespectsContext(t *testing.T, r *resultBundle) {
	w := s.waiter(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := w.WaitResult(ctx, r.id(1))
	require.ErrorIs(t, err, context.DeadlineExceeded, "WaitResult for a result that never comes")
	require.Less(t, time.Since(start), r.o.timeout, "WaitResult returns when its context ends")

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := w.WaitResult(ctx, r.id(2))
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(r.o.timeout):
		t.Fatal("WaitResult ignored the cancellation of its context")
	}
}

func (s *resultSuite) ttl(t *testing.T, r *resultBundle) {
	ttl := r.o.resultTTL
	if ttl <= 0 {
		t.Skip("the launcher did not configure a result TTL (conformance.WithResultTTL)")
	}
	id := r.id(1)
	body := r.body("expiring")
	setAt := time.Now()
	require.NoError(t, r.rb.SetResults(r.ctx(), []sdk.StoredResult{{TaskID: id, Body: body}}))
	progress := sdk.Has(r.caps, sdk.CapProgress)
	if progress {
		require.NoError(t, r.rb.SetProgress(r.ctx(), id, []byte(`{"state":"STARTED","meta":{}}`)))
	}
	r.requireResult(id, body)
	var goneAt time.Time
	require.Eventually(t, func() bool {
		ready, err := r.rb.IsReady(r.ctx(), id)
		goneAt = time.Now()
		return err == nil && !ready
	}, ttl+r.o.timeout, 20*time.Millisecond, "the result outlived its TTL (%s) by %s", ttl, r.o.timeout)
	require.GreaterOrEqual(t, goneAt.Sub(setAt), ttl-timeTolerance, "the result expired before its TTL")
	r.requireNotFound(id)
	if progress {
		require.Eventually(t, func() bool {
			_, err := r.rb.GetProgress(r.ctx(), id)
			return errors.Is(err, sdk.ErrNotFound)
		}, r.o.timeout, 20*time.Millisecond, "progress outlived the TTL")
	}
}

func (s *resultSuite) close(t *testing.T, r *resultBundle) {
	id := r.id(1)
	require.NoError(t, r.rb.SetResults(r.ctx(), []sdk.StoredResult{{TaskID: id, Body: r.body(1)}}))
	require.NoError(t, r.rb.Close(r.ctx()), "close the result backend")
}
