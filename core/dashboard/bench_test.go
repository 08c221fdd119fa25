package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/core/dashboard"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// BenchmarkPages renders each dashboard page against the Redis of
// TASKIQ_REDIS_URL holding benchQueued queued messages and benchDead dead
// letters in one queue (written straight into the stream and the
// dead-letter stream, as a Python producer would, then deleted), and
// benchKicked more queued messages kicked through the broker. The goal is every page within 100 ms.
// Run it with a bounded count:
//
//	TASKIQ_REDIS_URL=redis://127.0.0.1:6379/9 go test -run '^$' -bench Pages -benchtime 20x ./core/dashboard/
const (
	benchQueued = 100_000
	benchDead   = 10_000
	// benchKicked more queued messages are kicked through the broker.
	benchKicked = 100
)

func BenchmarkPages(b *testing.B) {
	url := os.Getenv("TASKIQ_REDIS_URL")
	if url == "" {
		b.Skip("needs TASKIQ_REDIS_URL")
	}
	q := randomName()
	opt, err := redis.ParseURL(url)
	require.NoError(b, err)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	defer rdb.Del(ctx, q, q+":dead", q+":delayed", q+":queues", q+":workers", q+":ids", q+":ids:upto")

	fill := func(key string, n int, fields func(i int) []any) {
		for start := 0; start < n; start += 1000 {
			pipe := rdb.Pipeline()
			for i := start; i < min(n, start+1000); i++ {
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: fields(i)})
			}
			_, err := pipe.Exec(ctx)
			require.NoError(b, err)
		}
	}
	body := func(i int) []byte {
		m := &wire.Message{TaskID: fmt.Sprintf("bench-%07d", i), TaskName: "bench.sync_invoices",
			Labels: map[string]any{"tenant": "acme"}, Args: []json.RawMessage{json.RawMessage(strconv.Itoa(i))}}
		out, err := m.MarshalJSON()
		require.NoError(b, err)
		return out
	}
	began := time.Now()
	// The broker's consumer group (consumer_group, "taskiq"), created
	// before the fill as a listening worker would have: every message is
	// queued, none delivered.
	require.NoError(b, rdb.XGroupCreateMkStream(ctx, q, "taskiq", "0").Err())
	fill(q, benchQueued, func(i int) []any { return []any{"data", body(i)} })
	fill(q+":dead", benchDead, func(i int) []any {
		return []any{"data", body(benchQueued + i), "reason", "upstream timeout after 30s", "queue", q,
			"attempt", 3, "failed_at", time.Now().UnixMilli(), "original_id", "0-1"}
	})
	b.Logf("filled %d queued and %d dead messages in %s", benchQueued, benchDead, time.Since(began).Round(time.Millisecond))

	app := loadRedisApp(b, url, q)
	h, err := dashboard.New(app, dashboard.Options{})
	require.NoError(b, err)
	// Kicked through the broker, after the raw fill: the last queued
	// messages, indexed by task id (the Redis plugin's task index).
	for i := range benchKicked {
		_, err := app.KickByName(ctx, core.RawKick{TaskName: "bench.sync_invoices", TaskID: fmt.Sprintf("kicked-%04d", i),
			Args: []json.RawMessage{json.RawMessage(strconv.Itoa(i))}, Labels: map[string]any{"tenant": "acme"}})
		require.NoError(b, err)
	}
	in, _ := app.Inspector("")
	dead, err := in.Messages(ctx, core.MessageQuery{Queue: q, State: core.StateDead, Limit: 1})
	require.NoError(b, err)
	require.Len(b, dead.Messages, 1)
	d := dead.Messages[0]
	first, err := in.Messages(ctx, core.MessageQuery{Queue: q, State: core.StateQueued, Limit: 50})
	require.NoError(b, err)
	require.NotEmpty(b, first.Next)
	qs, err := in.Queues(ctx)
	require.NoError(b, err)
	for _, s := range qs {
		if s.Name == q {
			require.EqualValues(b, benchQueued+benchKicked, s.Queued)
			require.EqualValues(b, benchDead, s.Dead)
		}
	}

	pages := []struct{ name, path string }{
		{"queues", "/queues"},
		{"tasks-queued", "/tasks?queue=" + q + "&state=queued"},
		{"tasks-queued-page2", "/tasks?queue=" + q + "&state=queued&cursor=" + first.Next},
		{"dead", "/tasks?queue=" + q + "&state=dead"},
		{"dead-search-hit", "/tasks?queue=" + q + "&state=dead&q=10042"},
		{"dead-search-miss", "/tasks?queue=" + q + "&state=dead&q=no-such-text"},
		{"task", "/task/" + d.TaskID + "?queue=" + q + "&state=dead&ref=" + d.Ref},
		{"workers", "/workers"},
		{"schedules", "/schedules"},
		// A task named by id alone (taskiq task ID, a typed URL), kicked by
		// taskiq-go: found through the task index; this one is the last
		// queued.
		{"task-by-id", fmt.Sprintf("/task/kicked-%04d", benchKicked-1)},
		// The same for messages written without an index field (a Python
		// producer), the first time: the lookup misses and indexes every
		// entry past the backfill cursor (here all 100,100), then finds it.
		// Before each render the field and the cursor are removed again.
		{"task-by-id-unindexed-first", "/task/bench-0099999"},
		// And every later time: the field the first miss added answers.
		{"task-by-id-unindexed", "/task/bench-0099999"},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				if p.name == "task-by-id-unindexed-first" {
					b.StopTimer()
					require.NoError(b, rdb.HDel(ctx, q+":ids", "bench-0099999").Err())
					require.NoError(b, rdb.Del(ctx, q+":ids:upto").Err())
					b.StartTimer()
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p.path, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: status %d: %s", p.path, rec.Code, rec.Body.String())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
		})
	}
}
