package core_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

// BenchmarkCancelWatch measures what watching cancellations costs a worker
// per task: the same no-op tasks through an in-process in-memory broker
// that declares "cancel" (every task registered with the cancellation
// registry) and one that does not. Compare the two in one run:
//
//	go test -run '^$' -bench CancelWatch -count 3 ./core/
func BenchmarkCancelWatch(b *testing.B) {
	for _, withCancel := range []bool{false, true} {
		name := "without"
		caps := slices.DeleteFunc(slices.Clone(inmemory.BrokerCapabilities), func(c string) bool { return c == sdk.CapCancel })
		if withCancel {
			name, caps = "with", inmemory.BrokerCapabilities
		}
		b.Run(name, func(b *testing.B) {
			app, err := core.New(core.WithBroker("default", inmemory.NewBroker(inmemory.BrokerOptions{}), caps...),
				core.WithResultBackend(inmemory.NewResultBackend(inmemory.ResultOptions{}), sdk.CapWait),
				core.WithLogger(hclog.NewNullLogger()))
			if err != nil {
				b.Fatal(err)
			}
			defer app.Close(context.Background())
			noop := core.MustTask[int](app, "bench.noop", func(n int) (int, error) { return n, nil })
			ctx, stop := context.WithCancel(context.Background())
			ready, done := make(chan struct{}), make(chan error, 1)
			go func() { done <- app.RunWorker(ctx, core.WorkerOptions{Ready: func() { close(ready) }}) }()
			<-ready
			defer func() { stop(); <-done }()
			const batch = 200
			tasks := make([]*core.AsyncTask[int], batch)
			for b.Loop() {
				for i := range tasks {
					if tasks[i], err = noop.Kiq(ctx, i); err != nil {
						b.Fatal(err)
					}
				}
				for _, at := range tasks {
					if _, err := at.WaitResult(ctx, 10*time.Second); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/task")
		})
	}
}
