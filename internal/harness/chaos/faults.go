package chaos

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// minFaults is what a scenario must have injected to prove anything: a
// scenario whose tasks all finished before its faults fired fails.
var minFaults = map[string]map[EventKind]int{
	"kill-worker":   {KillWorker: 2},
	"kill-plugins":  {KillBroker: 1, KillResults: 1},
	"redis-restart": {RedisDown: 2},
	"redis-oom":     {RedisOOM: 1},
	"nats":          {KillWorker: 2, KillBroker: 2, NatsDown: 2},
	"rabbitmq-kill": {KillWorker: 1, KillBroker: 1},
}

// checkFaults reports the faults a scenario failed to inject.
func checkFaults(scenario string, evs []Event) []string {
	n := map[EventKind]int{}
	for _, e := range evs {
		n[e.Kind]++
	}
	var out []string
	for k, want := range minFaults[scenario] {
		if n[k] < want {
			out = append(out, fmt.Sprintf("only %d %s fault(s) injected, want at least %d: the tasks finished too soon (raise -tasks or -task-ms)", n[k], k, want))
		}
	}
	return out
}

// waitTick waits d or until ctx ends; false when ctx ended.
func waitTick(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// unfinished reports whether some task still has no outcome: faults after
// that point would hit an idle worker and prove nothing.
func (r *run) unfinished() bool { return r.done.Load() < int64(len(r.tasks)) || len(r.tasks) == 0 }

// readyWorkers are the worker children that run their task module and both
// Redis plugin processes: killing one that is still starting proves little.
func (r *run) readyWorkers() []proc {
	ps, err := listProcs()
	if err != nil {
		return nil
	}
	var out []proc
	for _, w := range childrenOf(ps, r.supervisorPID(), "") {
		if len(childrenOf(ps, w.pid, "chaos-module")) == 1 && r.pluginsUp(ps, w.pid) {
			out = append(out, w)
		}
	}
	return out
}

// pluginsUp reports whether worker w runs both its plugin processes: two
// taskiq-redis (broker, results), or the broker plugin and taskiq-redis.
func (r *run) pluginsUp(ps []proc, w int) bool {
	if r.rabbit() {
		return len(childrenOf(ps, w, "taskiq-rabbitmq")) == 1 && len(childrenOf(ps, w, "taskiq-redis")) == 1
	}
	if r.sc.broker == brokerNATS {
		return len(childrenOf(ps, w, "taskiq-nats")) == 1 && len(childrenOf(ps, w, "taskiq-redis")) == 1
	}
	return len(childrenOf(ps, w, "taskiq-redis")) == 2
}

// killWorkers SIGKILLs a random worker child every KillEvery, when every
// child is ready: the supervisor's restart backoff doubles per death up to
// 30s, so killing whatever is up every few seconds soon leaves no worker
// at all and measures the backoff instead of the queue.
func (r *run) killWorkers(ctx context.Context) {
	for waitTick(ctx, r.opts.KillEvery) && r.unfinished() {
		w, ok := r.pickReadyWorker()
		if !ok {
			continue
		}
		at := time.Now()
		if err := sigkill(w.pid); err != nil {
			r.log("kill worker %d: %v", w.pid, err)
			continue
		}
		r.event(Event{Kind: KillWorker, WorkerPID: w.pid, At: at, Detail: fmt.Sprintf("worker child pid %d", w.pid)})
	}
}

// pickReadyWorker picks a worker child at random once every child is
// ready; false (logged) while one is not.
func (r *run) pickReadyWorker() (proc, bool) {
	ws := r.readyWorkers()
	if len(ws) < r.opts.Workers {
		r.log("%d of %d worker children ready; skipping this tick", len(ws), r.opts.Workers)
		return proc{}, false
	}
	return ws[r.rng.IntN(len(ws))], true
}

// pluginRoles tells a worker's two taskiq-redis processes apart. At start
// the broker is the older one (core.Load starts brokers before the result
// backend); a process that appears after a kill takes the killed role.
type pluginRoles struct {
	broker, results int
}

// killPlugins SIGKILLs, every KillEvery, the broker plugin or the
// result-backend plugin of a worker child, in turn: broker of worker 1,
// result backend of worker 1, broker of worker 2, ...
func (r *run) killPlugins(ctx context.Context) {
	roles := map[int]*pluginRoles{}
	tick := 0
	for waitTick(ctx, r.opts.KillEvery) && r.unfinished() {
		ps, err := listProcs()
		if err != nil {
			continue
		}
		workers := childrenOf(ps, r.supervisorPID(), "")
		for _, w := range workers {
			plugins := childrenOf(ps, w.pid, "taskiq-redis")
			rl := roles[w.pid]
			alive := map[int]bool{}
			for _, p := range plugins {
				alive[p.pid] = true
			}
			switch {
			case rl == nil && len(plugins) == 2:
				roles[w.pid] = &pluginRoles{broker: plugins[0].pid, results: plugins[1].pid}
			case rl != nil:
				for _, p := range plugins {
					if p.pid == rl.broker || p.pid == rl.results {
						continue
					}
					if !alive[rl.broker] && alive[rl.results] {
						rl.broker = p.pid
					} else if !alive[rl.results] && alive[rl.broker] {
						rl.results = p.pid
					}
				}
			}
		}
		if len(workers) == 0 {
			continue
		}
		w := workers[(tick/2)%len(workers)]
		rl := roles[w.pid]
		plugins := childrenOf(ps, w.pid, "taskiq-redis")
		if rl == nil || len(plugins) != 2 {
			r.log("worker %d does not run both plugins yet; skipping this tick", w.pid)
			continue
		}
		kind, pid := KillBroker, rl.broker
		if tick%2 == 1 {
			kind, pid = KillResults, rl.results
		}
		tick++
		at := time.Now()
		if err := sigkill(pid); err != nil {
			r.log("kill plugin %d: %v", pid, err)
			continue
		}
		r.event(Event{Kind: kind, WorkerPID: w.pid, At: at, Detail: fmt.Sprintf("taskiq-redis pid %d of worker %d", pid, w.pid)})
	}
}

// restartRedis stops the run's Redis twice once the tasks are kicked: with
// SIGKILL when a quarter of the tasks are done, with SHUTDOWN NOSAVE at 60%,
// each time for redisDowntime, then starts it again on the same port and
// directory (AOF, appendfsync always).
func (r *run) restartRedis(ctx context.Context) {
	select {
	case <-r.kicked:
	case <-ctx.Done():
		return
	}
	for i, at := range []float64{0.25, 0.60} {
		down := redisDowntime[i]
		if !r.waitDone(ctx, at) {
			return
		}
		start := time.Now()
		how := "kill -9"
		if i == 0 {
			_ = r.redis.kill()
		} else {
			how = "SHUTDOWN NOSAVE"
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = r.redis.shutdownNoSave(sctx)
			cancel()
		}
		waitTick(ctx, down)
		// Always bring it back, even past the deadline: the accounting
		// reads the outcome from it.
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := r.redis.start(sctx)
		cancel()
		detail := fmt.Sprintf("%s at %.0f%% done, down %.1fs", how, at*100, time.Since(start).Seconds())
		if err != nil {
			detail += ", " + restartFailed + ": " + err.Error()
		}
		r.event(Event{Kind: RedisDown, At: start, Until: time.Now(), Detail: detail})
		if err != nil {
			return
		}
	}
}

// restartFailed marks the event of a Redis that did not come back.
const restartFailed = "restart FAILED"

// redisDowntime is how long Redis stays down at each restart: shorter than
// the default 3s lease the first time, longer the second, so that leases
// run out while the workers cannot extend them.
var redisDowntime = [2]time.Duration{2 * time.Second, 5 * time.Second}

// waitDone waits until the share frac of the tasks has an outcome; false
// when ctx ended first.
func (r *run) waitDone(ctx context.Context, frac float64) bool {
	for r.done.Load() < int64(frac*float64(len(r.tasks))) {
		if !waitTick(ctx, 50*time.Millisecond) {
			return false
		}
	}
	return true
}

// oomHold is how long Redis stays full. It is longer than the worker's
// result-save retry (10s, core's saveRetryFor) plus the lease, so that
// tasks whose result cannot be saved get to the nack, whose write Redis
// refuses as well: their entries must stay pending and run again once
// their lease expires, after Redis got room.
const oomHold = 14 * time.Second

// fillRedis makes the run's Redis full once a quarter of the tasks are
// done: maxmemory-policy noeviction and maxmemory set to the memory it
// uses at that moment, so every write that grows memory (result SET, nack
// XADD/ZADD, kick) is refused with OOM while acks (XACK, XDEL) still run.
// After oomHold maxmemory is lifted (CONFIG SET maxmemory 0). The fault
// counts only when Redis did refuse writes (INFO errorstats).
func (r *run) fillRedis(ctx context.Context) {
	select {
	case <-r.kicked:
	case <-ctx.Done():
		return
	}
	if !r.waitDone(ctx, 0.25) {
		return
	}
	start := time.Now()
	used, err := r.redisInfo(ctx, "memory", "used_memory")
	if err == nil {
		err = r.rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err()
	}
	if err == nil {
		err = r.rdb.ConfigSet(ctx, "maxmemory", used).Err()
	}
	if err != nil {
		r.log("make Redis full: %v", err)
		return
	}
	waitTick(ctx, oomHold)
	// Always lift the limit, even past the deadline: the accounting
	// writes nothing, but the worker must finish its tasks.
	lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.rdb.ConfigSet(lctx, "maxmemory", "0").Err(); err != nil {
		r.log("lift maxmemory: %v", err)
	}
	end := time.Now()
	stat, _ := r.redisInfo(lctx, "errorstats", "errorstat_OOM")
	refused, _ := strconv.Atoi(strings.TrimPrefix(stat, "count="))
	if refused == 0 {
		r.log("Redis was full for %.1fs but refused no write", end.Sub(start).Seconds())
		return
	}
	r.event(Event{Kind: RedisOOM, At: start, Until: end, Detail: fmt.Sprintf(
		"maxmemory %s bytes (noeviction) at 25%% done for %.1fs: %d commands refused with OOM", used, end.Sub(start).Seconds(), refused)})
}

// redisInfo returns one field of an INFO section of the run's Redis.
func (r *run) redisInfo(ctx context.Context, section, field string) (string, error) {
	info, err := r.rdb.Info(ctx, section).Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, field)
}
