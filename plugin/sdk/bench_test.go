package sdk_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// BenchmarkStreamThroughput moves b.N messages through a broker plugin
// process: batched kicks from one goroutine, Listen with batched acks in
// another, both crossing the process boundary.
func BenchmarkStreamThroughput(b *testing.B) {
	const batch = 100
	c := sdktest.Launch(b, sdk.KindBroker, `{"queue":"bench"}`)
	br := c.Broker()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, err := br.Listen(ctx, sdk.ListenRequest{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := []byte(`{"task_id":"0123456789abcdef0123456789abcdef","task_name":"bench:noop","labels":{},"labels_types":{},"args":[1,2],"kwargs":{}}`)

	b.ResetTimer()
	start := time.Now()
	kickErr := make(chan error, 1)
	go func() {
		for sent := 0; sent < b.N; {
			n := min(batch, b.N-sent)
			msgs := make([]sdk.Outgoing, n)
			for i := range msgs {
				msgs[i] = sdk.Outgoing{TaskID: fmt.Sprint(sent + i), TaskName: "bench:noop", Body: body}
			}
			if err := br.Kick(ctx, msgs); err != nil {
				kickErr <- err
				return
			}
			sent += n
		}
		kickErr <- nil
	}()
	for got := 0; got < b.N; {
		ds, err := s.Recv(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		ss := make([]sdk.Settlement, len(ds))
		for i, d := range ds {
			ss[i] = sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleAck}
		}
		if err := s.Settle(ctx, ss); err != nil {
			b.Fatal(err)
		}
		got += len(ds)
	}
	if err := <-kickErr; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
