package inmemory

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

const benchBatch = 100

func benchBatchOf(n int) []sdk.Outgoing {
	out := make([]sdk.Outgoing, n)
	body := []byte(`{"task_id":"x","task_name":"bench.noop","labels":{},"args":[],"kwargs":{}}`)
	for i := range out {
		out[i] = sdk.Outgoing{TaskID: strconv.Itoa(i), TaskName: "bench.noop", Body: body}
	}
	return out
}

// BenchmarkKickRecvAck moves b.N messages through one stream, one goroutine,
// in batches of 100: kick, receive, ack.
func BenchmarkKickRecvAck(b *testing.B) {
	br := NewBroker(BrokerOptions{})
	defer br.Close(context.Background())
	ctx := context.Background()
	s, err := br.Listen(ctx, sdk.ListenRequest{})
	if err != nil {
		b.Fatal(err)
	}
	batch := benchBatchOf(benchBatch)
	st := make([]sdk.Settlement, 0, benchBatch)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += benchBatch {
		n := min(benchBatch, b.N-done)
		if err := br.Kick(ctx, batch[:n]); err != nil {
			b.Fatal(err)
		}
		recvAndAck(b, ctx, s, n, st)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkKickRecvAckParallel has 2 producers and 4 consumers (own streams)
// running at once, batches of 100.
func BenchmarkKickRecvAckParallel(b *testing.B) {
	const producers, consumers = 2, 4
	br := NewBroker(BrokerOptions{})
	ctx := context.Background()
	batch := benchBatchOf(benchBatch)
	var acked sync.WaitGroup
	acked.Add(b.N)
	var cwg sync.WaitGroup
	for range consumers {
		s, err := br.Listen(ctx, sdk.ListenRequest{})
		if err != nil {
			b.Fatal(err)
		}
		cwg.Go(func() {
			st := make([]sdk.Settlement, 0, benchBatch)
			for {
				ds, err := s.Recv(ctx, benchBatch)
				if err != nil {
					return
				}
				st = st[:0]
				for _, d := range ds {
					st = append(st, sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleAck})
				}
				if err := s.Settle(ctx, st); err != nil {
					panic(err)
				}
				acked.Add(-len(ds))
			}
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	var pwg sync.WaitGroup
	for p := range producers {
		pwg.Go(func() {
			share := b.N / producers
			if p == 0 {
				share += b.N % producers
			}
			for done := 0; done < share; done += benchBatch {
				if err := br.Kick(ctx, batch[:min(benchBatch, share-done)]); err != nil {
					panic(err)
				}
			}
		})
	}
	pwg.Wait()
	acked.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	_ = br.Close(ctx)
	cwg.Wait()
}

// BenchmarkResultSetGet stores results in batches of 100 and reads each back.
func BenchmarkResultSetGet(b *testing.B) {
	r := NewResultBackend(ResultOptions{})
	ctx := context.Background()
	body := []byte(`{"is_err":false,"return_value":null}`)
	res := make([]sdk.StoredResult, benchBatch)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += benchBatch {
		n := min(benchBatch, b.N-done)
		for i := range n {
			res[i] = sdk.StoredResult{TaskID: strconv.Itoa(done + i), Body: body}
		}
		if err := r.SetResults(ctx, res[:n]); err != nil {
			b.Fatal(err)
		}
		for i := range n {
			if _, err := r.GetResult(ctx, res[i].TaskID); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "results/s")
}

// recvAndAck receives n deliveries from s in batches and acks each batch,
// reusing st for the settlements.
func recvAndAck(b *testing.B, ctx context.Context, s sdk.Stream, n int, st []sdk.Settlement) {
	b.Helper()
	for got := 0; got < n; {
		ds, err := s.Recv(ctx, benchBatch)
		if err != nil {
			b.Fatal(err)
		}
		st = st[:0]
		for _, d := range ds {
			st = append(st, sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleAck})
		}
		if err := s.Settle(ctx, st); err != nil {
			b.Fatal(err)
		}
		got += len(ds)
	}
}
