package taskiqredis

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// testEnv is one Redis a test runs against: a private miniredis, or the
// real Redis named by TASKIQ_REDIS_URL (the database it names, or 15 when it
// names none or 0; the tests own that database and flush it).
type testEnv struct {
	url string
	mr  *miniredis.Miniredis // nil for real Redis
	rdb *redis.Client

	mu    sync.Mutex
	clock time.Time
}

// realRedisURL returns TASKIQ_REDIS_URL, or "". A URL without a database
// or with database 0 (the one applications use) is pointed at database 15;
// any other database is kept, so runs that share one server can each flush
// their own.
func realRedisURL(t testing.TB) string {
	raw := os.Getenv("TASKIQ_REDIS_URL")
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	require.NoError(t, err, "TASKIQ_REDIS_URL")
	if db := strings.Trim(u.Path, "/"); db == "" || db == "0" {
		u.Path = "/15"
	}
	return u.String()
}

var flushOnce sync.Once

func newMiniEnv(t testing.TB) *testEnv {
	mr := miniredis.RunT(t)
	e := &testEnv{url: "redis://" + mr.Addr() + "/0", mr: mr}
	e.rdb = redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = e.rdb.Close() })
	return e
}

func newRealEnv(t testing.TB, u string) *testEnv {
	opt, err := redis.ParseURL(u)
	require.NoError(t, err)
	e := &testEnv{url: u, rdb: redis.NewClient(opt)}
	t.Cleanup(func() { _ = e.rdb.Close() })
	flushOnce.Do(func() { require.NoError(t, e.rdb.FlushDB(context.Background()).Err()) })
	return e
}

func (e *testEnv) real() bool { return e.mr == nil }

// queue returns name itself on a private miniredis (so the default key
// layout is what the test sees) and a unique variant on the shared real
// Redis.
func (e *testEnv) queue(name string) string {
	if e.real() {
		return name + "-" + randomHex(6)
	}
	return name
}

// advance lets d pass for Redis's idle-time bookkeeping: miniredis's clock
// is moved (no waiting); real Redis is given the time.
func (e *testEnv) advance(d time.Duration) {
	if e.mr == nil {
		time.Sleep(d)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.clock.IsZero() {
		e.clock = time.Now()
	}
	e.clock = e.clock.Add(d)
	e.mr.SetTime(e.clock)
}

// config renders a broker/result config for this env.
func (e *testEnv) config(t testing.TB, kv map[string]any) sdk.Config {
	m := map[string]any{"url": e.url}
	for k, v := range kv {
		m[k] = v
	}
	raw, err := json.Marshal(m)
	require.NoError(t, err)
	return sdk.Config{Name: "test", Raw: raw}
}

func (e *testEnv) broker(t testing.TB, kv map[string]any) *broker {
	t.Helper()
	b, err := newBroker(context.Background(), e.config(t, kv))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

func (e *testEnv) results(t testing.TB, kv map[string]any) *resultBackend {
	t.Helper()
	r, err := newResultBackend(context.Background(), e.config(t, kv))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// runSuite runs suite against a fresh miniredis per test (in parallel) and,
// when TASKIQ_REDIS_URL is set, against real Redis (sequentially, unique
// keys per test).
func runSuite(t *testing.T, suite map[string]func(t *testing.T, e *testEnv)) {
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		for name, f := range suite {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f(t, newMiniEnv(t))
			})
		}
	})
	t.Run("redis", func(t *testing.T) {
		u := realRedisURL(t)
		if u == "" {
			t.Skip("set TASKIQ_REDIS_URL (e.g. redis://127.0.0.1:6379/0; database 0 becomes 15) to run against real Redis")
		}
		for name, f := range suite {
			t.Run(name, func(t *testing.T) { f(t, newRealEnv(t, u)) })
		}
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recvN receives until n deliveries arrived.
func recvN(t testing.TB, s sdk.Stream, n int) []sdk.Delivery {
	t.Helper()
	ctx := ctxT(t)
	var out []sdk.Delivery
	for len(out) < n {
		ds, err := s.Recv(ctx, n-len(out))
		require.NoError(t, err)
		out = append(out, ds...)
	}
	return out
}

func listen(t testing.TB, b *broker, req sdk.ListenRequest) sdk.Stream {
	t.Helper()
	s, err := b.Listen(ctxT(t), req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func kick(t testing.TB, b *broker, msgs ...sdk.Outgoing) {
	t.Helper()
	require.NoError(t, b.Kick(ctxT(t), msgs))
}

func out(body string) sdk.Outgoing {
	return sdk.Outgoing{TaskID: "t", TaskName: "n", Body: []byte(body)}
}
