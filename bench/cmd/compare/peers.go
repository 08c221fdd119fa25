package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// counter counts handler executions and closes done at the target.
type counter struct {
	n      atomic.Int64
	target int64
	last   atomic.Int64 // ns since start of the latest finish
	start  time.Time
	once   sync.Once
	done   chan struct{}
}

func newCounter(target int) *counter {
	return &counter{target: int64(target), done: make(chan struct{})}
}

func (c *counter) hit() {
	c.last.Store(int64(time.Since(c.start)))
	if c.n.Add(1) >= c.target {
		c.once.Do(func() { close(c.done) })
	}
}

func (c *counter) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %d of %d (%v)", errIncomplete, c.n.Load(), c.target, ctx.Err())
	}
}

// kickAll runs kickers goroutines, each taking the next batch of indices.
func kickAll(ctx context.Context, kickers, tasks, batch int, kick func(from, to int) error) (time.Duration, error) {
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range kickers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				from := int(next.Add(int64(batch))) - batch
				if from >= tasks {
					return
				}
				if err := kick(from, min(from+batch, tasks)); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func finish(system string, s settings, c *counter, kickDur time.Duration, cpu0 float64) outcome {
	secs := time.Duration(c.last.Load()).Seconds()
	return outcome{
		System:      system,
		Tasks:       c.n.Load(),
		Seconds:     secs,
		TasksPerSec: float64(c.n.Load()) / secs,
		KicksPerSec: float64(s.Tasks) / kickDur.Seconds(),
		ClientCPU:   selfCPU() - cpu0,
		PeakRSSMB:   selfPeakRSSMB(),
	}
}

// runAsynq: asynq server with Concurrency = workers, a no-op handler, and
// kickers calling Client.Enqueue (asynq has no batch enqueue).
func runAsynq(ctx context.Context, s settings) (outcome, error) {
	opt := asynq.RedisClientOpt{Addr: s.RedisAddr, DB: s.RedisDB}
	c := newCounter(s.Tasks)
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: s.Workers, LogLevel: asynq.WarnLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench", func(context.Context, *asynq.Task) error { c.hit(); return nil })
	if err := srv.Start(mux); err != nil {
		return outcome{}, err
	}
	defer srv.Shutdown()
	client := asynq.NewClient(opt)
	defer client.Close()

	cpu0 := selfCPU()
	c.start = time.Now()
	kickDur, err := kickAll(ctx, s.Kickers, s.Tasks, 1, func(from, _ int) error {
		var p [8]byte
		binary.LittleEndian.PutUint64(p[:], uint64(from))
		_, err := client.EnqueueContext(ctx, asynq.NewTask("bench", p[:]), asynq.MaxRetry(0))
		return err
	})
	if err != nil {
		return outcome{}, err
	}
	if err := c.wait(ctx); err != nil {
		return outcome{}, err
	}
	return finish("asynq", s, c, kickDur, cpu0), nil
}

type benchArgs struct {
	I int `json:"i"`
}

func (benchArgs) Kind() string { return "bench" }

type benchWorker struct {
	river.WorkerDefaults[benchArgs]
	c *counter
}

func (w *benchWorker) Work(context.Context, *river.Job[benchArgs]) error { w.c.hit(); return nil }

// runRiver: River with MaxWorkers = workers on the default queue, a no-op
// worker, and kickers inserting with InsertManyFast in batches (River's bulk
// path). FetchCooldown and FetchPollInterval are lowered from their defaults
// (100ms / 1s): with the defaults a queue fetches at most MaxWorkers jobs per
// 100ms, which caps River far below what it can do.
func runRiver(ctx context.Context, s settings) (outcome, error) {
	pool, err := pgxpool.New(ctx, s.PgDSN)
	if err != nil {
		return outcome{}, err
	}
	defer pool.Close()
	c := newCounter(s.Tasks)
	workers := river.NewWorkers()
	river.AddWorker(workers, &benchWorker{c: c})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: s.Workers}},
		Workers:           workers,
		FetchCooldown:     time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return outcome{}, err
	}
	if err := client.Start(ctx); err != nil {
		return outcome{}, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(sctx)
	}()

	cpu0 := selfCPU()
	pg0 := serverCPU("postgres")
	c.start = time.Now()
	kickDur, err := kickAll(ctx, s.Kickers, s.Tasks, s.RiverBatch, func(from, to int) error {
		params := make([]river.InsertManyParams, 0, to-from)
		for i := from; i < to; i++ {
			params = append(params, river.InsertManyParams{Args: benchArgs{I: i}, InsertOpts: &river.InsertOpts{MaxAttempts: 1}})
		}
		_, err := client.InsertManyFast(ctx, params)
		return err
	})
	if err != nil {
		return outcome{}, err
	}
	if err := c.wait(ctx); err != nil {
		return outcome{}, err
	}
	o := finish("river", s, c, kickDur, cpu0)
	// Postgres backends of this process exit with it, so their CPU is read
	// here, while they still live.
	o.ServerCPU = serverCPU("postgres") - pg0
	return o, nil
}
