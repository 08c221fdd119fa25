package taskiqredis

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/internal/backoff"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// delayedQueuesKey is the set of the queues delayed messages were written
// for, as "<mode>|<queue>". Every taskiq-go process that has the broker
// loaded (a worker of any queue, a scheduler, an application that kicks)
// moves the due messages of each of them, so a delayed kick to a queue only
// Python workers consume still arrives.
const delayedQueuesKey = "taskiq-go:delayed-queues"

func moveDelayedAttribute() sdk.Attribute {
	return sdk.Attribute{Name: "move_delayed", Type: sdk.TypeBool, Default: true, Description: "Move due " +
		"delayed messages of every queue that delayed kicks or nacks went to (not only the queues this " +
		"process listens to), every delay_poll. Any taskiq-go process with the broker loaded does it: " +
		"a worker of any queue, a scheduler, an application that kicks. Moving is atomic, so any " +
		"number of processes may do it; false leaves it to the others."}
}

func delayedQueueMember(mode, queue string) string { return mode + "|" + queue }

// registerDelayed adds queues to delayedQueuesKey, in pipe.
func (b *broker) registerDelayed(ctx context.Context, pipe redis.Pipeliner, queues ...string) {
	if b.opts.mode == modePubSub || len(queues) == 0 {
		return
	}
	members := make([]any, len(queues))
	for i, q := range queues {
		members[i] = delayedQueueMember(b.opts.mode, b.queueName(q))
	}
	pipe.SAdd(ctx, delayedQueuesKey, members...)
}

// delayedMover moves due delayed messages of every registered queue that no
// listener of this broker already moves.
type delayedMover struct {
	b      *broker
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	// passed, when set, is called after each pass (tests wait on it).
	passed func()
}

func newDelayedMover(b *broker) *delayedMover {
	ctx, cancel := context.WithCancel(context.Background())
	return &delayedMover{b: b, ctx: ctx, cancel: cancel}
}

func (m *delayedMover) start() {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		// Slower than the listeners' backoff: this loop is not what makes a
		// worker notice an outage, and its dials during one must not crowd
		// out theirs (go-redis fails fast once too many dials failed).
		bo := backoff.New(time.Second, 10*time.Second)
		for {
			wait, err := m.pass()
			m.mu.Lock()
			passed := m.passed
			m.mu.Unlock()
			if passed != nil {
				passed()
			}
			if err != nil {
				if m.ctx.Err() != nil {
					return
				}
				m.b.log.Warn("could not move the delayed messages of the registered queues; trying again", "error", wrapErr("move delayed", m.b.addr, err))
				if !bo.Wait(m.ctx) {
					return
				}
				continue
			}
			bo.Reset()
			if !sleep(m.ctx, wait) {
				return
			}
		}
	}()
}

// pass moves what is due on every registered queue and returns when to look
// again.
func (m *delayedMover) pass() (time.Duration, error) {
	wait := m.b.opts.delayPoll
	members, err := m.b.client.SMembers(m.ctx, delayedQueuesKey).Result()
	if err != nil {
		return wait, err
	}
	for _, member := range members {
		mode, queue, ok := strings.Cut(member, "|")
		if !ok || (mode != modeStream && mode != modeList) || m.b.listening(queue) {
			continue
		}
		_, next, err := m.b.moveDue(m.ctx, mode, queue, m.b.now())
		if err != nil {
			return wait, err
		}
		if !next.IsZero() {
			if d := next.Sub(m.b.now()); d < wait {
				wait = max(d, time.Millisecond)
			}
		}
	}
	return wait, nil
}

func (m *delayedMover) shutdown() {
	m.cancel()
	m.wg.Wait()
}

// sleep waits d, or until ctx ends (then it reports false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
