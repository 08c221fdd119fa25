package taskiqredis

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// pausedKey marks a queue as paused (taskiq queue pause): it exists while
// the queue is paused. It sits beside the queue's stream or list, on its
// slot in a cluster.
func (b *broker) pausedKey(queue string) string { return b.streamKey(queue) + ":paused" }

// pauseGate is a listener's view of which of its queues are paused,
// re-read at most every pause_poll with one EXISTS per queue.
type pauseGate struct {
	mu      sync.Mutex
	checked time.Time
	paused  map[string]bool // by queue name
}

// active returns the queues of qs that are not paused, in order. It logs
// when a queue is seen paused or resumed, so a worker that takes nothing
// from a queue says why. A failed check keeps the last known state.
func (l *listenerBase) active(ctx context.Context, qs []*queueSpec) []*queueSpec {
	g := &l.paused
	g.mu.Lock()
	defer g.mu.Unlock()
	now := l.b.now()
	// While Redis is failing the listener's calls, the check waits: it
	// would only add failed dials to the outage.
	l.okMu.Lock()
	failing := !l.failingSince.IsZero()
	l.okMu.Unlock()
	if !failing && (g.paused == nil || now.Sub(g.checked) >= l.b.opts.pausePoll) {
		g.checked = now
		pipe := l.b.client.Pipeline()
		cmds := make([]*redis.IntCmd, len(l.queues))
		for i, q := range l.queues {
			cmds[i] = pipe.Exists(ctx, l.b.pausedKey(q.name))
		}
		if _, err := pipe.Exec(ctx); err == nil {
			next := make(map[string]bool, len(l.queues))
			for i, q := range l.queues {
				next[q.name] = cmds[i].Val() > 0
				if next[q.name] != g.paused[q.name] {
					if next[q.name] {
						l.b.log.Warn("queue is paused; not fetching from it until it is resumed", "queue", q.name)
					} else if g.paused != nil {
						l.b.log.Info("queue resumed; fetching from it again", "queue", q.name)
					}
				}
			}
			g.paused = next
		}
	}
	if len(g.paused) == 0 {
		return qs
	}
	out := make([]*queueSpec, 0, len(qs))
	for _, q := range qs {
		if !g.paused[q.name] {
			out = append(out, q)
		}
	}
	return out
}

// idle waits while every queue of the listener is paused: until the next
// pause check is due (at most one blocking read's time), or the listener
// closes.
func (l *listenerBase) idle(ctx context.Context) {
	t := time.NewTimer(min(l.b.opts.pausePoll, l.b.opts.block))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
