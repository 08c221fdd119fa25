package chaos

import (
	"context"
	"fmt"
	"time"
)

// natsFaults is the fault script of the NATS scenario, keyed to the share
// of tasks done: SIGKILL a worker child, SIGKILL a worker's taskiq-nats
// broker plugin, kill -9 nats-server (2s down), SIGKILL a broker plugin
// again, SIGTERM nats-server (2s down), SIGKILL a worker child.
func (r *run) natsFaults(ctx context.Context) {
	select {
	case <-r.kicked:
	case <-ctx.Done():
		return
	}
	steps := []struct {
		at float64
		do func(context.Context)
	}{
		{0.10, r.killOneWorker},
		{0.25, r.killBrokerPlugin},
		{0.40, func(ctx context.Context) { r.restartNATS(ctx, "kill -9", r.nats.kill) }},
		{0.55, r.killBrokerPlugin},
		{0.70, func(ctx context.Context) { r.restartNATS(ctx, "SIGTERM", r.nats.term) }},
		{0.80, r.killOneWorker},
	}
	for _, s := range steps {
		if !r.waitDone(ctx, s.at) {
			return
		}
		s.do(ctx)
	}
}

// waitReady waits until every worker child runs its module and plugins.
func (r *run) waitReady(ctx context.Context) []proc {
	for {
		if ws := r.readyWorkers(); len(ws) >= r.opts.Workers {
			return ws
		}
		if !waitTick(ctx, 100*time.Millisecond) {
			return nil
		}
	}
}

func (r *run) killOneWorker(ctx context.Context) {
	ws := r.waitReady(ctx)
	if len(ws) == 0 {
		return
	}
	w := ws[r.rng.IntN(len(ws))]
	at := time.Now()
	if err := sigkill(w.pid); err != nil {
		r.log("kill worker %d: %v", w.pid, err)
		return
	}
	r.event(Event{Kind: KillWorker, WorkerPID: w.pid, At: at, Detail: fmt.Sprintf("worker child pid %d", w.pid)})
}

func (r *run) killBrokerPlugin(ctx context.Context) {
	ws := r.waitReady(ctx)
	if len(ws) == 0 {
		return
	}
	w := ws[r.rng.IntN(len(ws))]
	ps, err := listProcs()
	if err != nil {
		return
	}
	plugins := childrenOf(ps, w.pid, "taskiq-nats")
	if len(plugins) != 1 {
		r.log("worker %d runs %d taskiq-nats processes; skipping", w.pid, len(plugins))
		return
	}
	at := time.Now()
	if err := sigkill(plugins[0].pid); err != nil {
		r.log("kill plugin %d: %v", plugins[0].pid, err)
		return
	}
	r.event(Event{Kind: KillBroker, WorkerPID: w.pid, At: at, Detail: fmt.Sprintf("taskiq-nats pid %d of worker %d", plugins[0].pid, w.pid)})
}

// natsDowntime is how long nats-server stays down at a restart.
const natsDowntime = 2 * time.Second

func (r *run) restartNATS(ctx context.Context, how string, stop func() error) {
	start := time.Now()
	_ = stop()
	waitTick(ctx, natsDowntime)
	// Always bring it back, even past the deadline: the accounting reads
	// the dead letters from it.
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	err := r.nats.start(sctx)
	cancel()
	detail := fmt.Sprintf("%s, down %.1fs", how, time.Since(start).Seconds())
	if err != nil {
		detail += ", " + restartFailed + ": " + err.Error()
	}
	r.event(Event{Kind: NatsDown, At: start, Until: time.Now(), Detail: detail})
}
