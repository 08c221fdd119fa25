package taskiqredis

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

func benchEnv(b *testing.B) *testEnv {
	if u := realRedisURL(b); u != "" {
		return newRealEnv(b, u)
	}
	return newMiniEnv(b)
}

// BenchmarkStreamKickAck measures the stream broker's round trip: kick a
// batch of 100, receive it, ack it. Real Redis when TASKIQ_REDIS_URL is set,
// miniredis otherwise (which measures the plugin's overhead more than Redis).
func BenchmarkStreamKickAck(b *testing.B) {
	e := benchEnv(b)
	q := "bench-" + randomHex(4)
	br := e.broker(b, map[string]any{"queue": q, "block": "100ms"})
	s, err := br.Listen(context.Background(), sdk.ListenRequest{})
	require.NoError(b, err)
	defer s.Close()
	const batch = 100
	body := []byte(pythonMessage)
	msgs := make([]sdk.Outgoing, batch)
	for i := range msgs {
		msgs[i] = sdk.Outgoing{TaskID: "t", Body: body}
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	done := 0
	for done < b.N {
		n := min(batch, b.N-done)
		if err := br.Kick(ctx, msgs[:n]); err != nil {
			b.Fatal(err)
		}
		got := 0
		acks := make([]sdk.Settlement, 0, n)
		for got < n {
			ds, err := s.Recv(ctx, n-got)
			if err != nil {
				b.Fatal(err)
			}
			for _, d := range ds {
				acks = append(acks, sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleAck})
			}
			got += len(ds)
		}
		if err := s.Settle(ctx, acks); err != nil {
			b.Fatal(err)
		}
		done += n
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkStreamKick measures batched kicks alone (100 per pipeline).
func BenchmarkStreamKick(b *testing.B) {
	e := benchEnv(b)
	br := e.broker(b, map[string]any{"queue": "bench-kick-" + randomHex(4)})
	msgs := make([]sdk.Outgoing, 100)
	for i := range msgs {
		msgs[i] = sdk.Outgoing{TaskID: "t", Body: []byte(pythonMessage)}
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; done += len(msgs) {
		if err := br.Kick(ctx, msgs[:min(len(msgs), b.N-done)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkResultSet measures batched result writes (SET + PUBLISH per
// result, 100 results per pipeline).
func BenchmarkResultSet(b *testing.B) {
	e := benchEnv(b)
	r := e.results(b, map[string]any{"prefix": "bench-" + randomHex(4), "result_ttl": "1m"})
	batch := make([]sdk.StoredResult, 100)
	for i := range batch {
		batch[i] = sdk.StoredResult{TaskID: randomHex(16), Body: []byte(errorResult)}
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; done += len(batch) {
		if err := r.SetResults(ctx, batch[:min(len(batch), b.N-done)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "results/s")
}
