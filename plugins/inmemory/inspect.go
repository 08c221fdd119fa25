package inmemory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// TombstoneTTL is how long a cancelled task's tombstone is kept: a message
// of that task taken by a worker within it is not run.
const TombstoneTTL = 24 * time.Hour

// workerBeat is a worker's last heartbeat and when it expires.
type workerBeat struct {
	info    sdk.WorkerInfo
	expires time.Time
}

// Queues lists every queue the broker has seen, with exact counts (they
// live in memory; nothing is scanned but the delayed and lease heaps).
func (b *Broker) Queues(ctx context.Context) ([]sdk.QueueStats, error) {
	now := b.now()
	b.mu.Lock()
	defer b.unlock()
	byName := map[string]*sdk.QueueStats{}
	stats := func(name string) *sdk.QueueStats {
		if s := byName[name]; s != nil {
			return s
		}
		s := &sdk.QueueStats{Name: name, RefreshedAt: now}
		byName[name] = s
		return s
	}
	stats(b.opts.Queue)
	for name, q := range b.queues {
		s := stats(name)
		s.Queued, s.Consumers, s.Paused, s.Delivered = int64(q.n), len(q.listeners), q.paused, q.delivered
		if m := q.oldest(); m != nil {
			s.OldestAge = now.Sub(m.enqueuedAt)
		}
	}
	for _, m := range b.delayed.items {
		stats(m.queue).Delayed++
	}
	for _, m := range b.leases.items {
		stats(m.queue).Running++
	}
	for _, d := range b.dead {
		stats(d.Queue).Dead++
	}
	out := make([]sdk.QueueStats, 0, len(byName))
	for _, s := range byName {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// oldest is the queue's ready message enqueued first, or nil.
func (q *queue) oldest() *message {
	var o *message
	for _, l := range q.levels {
		if l.len() > 0 && (o == nil || l.front().enqueuedAt.Before(o.enqueuedAt)) {
			o = l.front()
		}
	}
	return o
}

// messages lists q's ready messages in delivery order.
func (q *queue) messages() []*message {
	out := make([]*message, 0, q.n)
	for _, l := range q.levels {
		out = append(out, l.items[l.head:]...)
	}
	return out
}

// remove takes the messages for which drop is true out of the queue.
func (q *queue) remove(drop func(*message) bool) {
	for _, l := range q.levels {
		kept := l.items[l.head:l.head]
		for _, m := range l.items[l.head:] {
			if drop(m) {
				q.n--
				continue
			}
			kept = append(kept, m)
		}
		clear(l.items[l.head+len(kept):])
		l.items = l.items[:l.head+len(kept)]
	}
}

func (b *Broker) info(m *message, state sdk.MessageState) sdk.MessageInfo {
	mi := sdk.MessageInfo{Ref: strconv.FormatUint(m.ref, 10), TaskID: m.taskID, TaskName: m.taskName,
		Queue: m.queue, State: state, Body: m.body, Attempt: m.attempt, EnqueuedAt: m.enqueuedAt}
	switch state {
	case sdk.StateDelayed:
		mi.DueAt = m.due
	case sdk.StateRunning:
		mi.LeaseDeadline = m.deadline
		mi.LeaseHolder = fmt.Sprintf("stream-%p", m.owner)
	}
	return mi
}

func deadInfo(d deadLetter) sdk.MessageInfo {
	return sdk.MessageInfo{Ref: strconv.FormatUint(d.ref, 10), TaskID: d.TaskID, TaskName: d.TaskName,
		Queue: d.Queue, State: sdk.StateDead, Body: d.Body, Attempt: d.Attempt, EnqueuedAt: d.EnqueuedAt,
		Reason: d.Reason, FailedAt: d.FailedAt}
}

// snapshotLocked lists the messages of queue in state, in order.
func (b *Broker) snapshotLocked(queue string, state sdk.MessageState) ([]sdk.MessageInfo, error) {
	var out []sdk.MessageInfo
	switch state {
	case sdk.StateQueued:
		if q := b.queues[queue]; q != nil {
			for _, m := range q.messages() {
				out = append(out, b.info(m, state))
			}
		}
	case sdk.StateDelayed, sdk.StateRunning:
		h := b.delayed
		if state == sdk.StateRunning {
			h = b.leases
		}
		ms := slices.Clone(h.items)
		slices.SortFunc(ms, func(x, y *message) int {
			if h.less(x, y) {
				return -1
			}
			return 1
		})
		for _, m := range ms {
			if m.queue == queue {
				out = append(out, b.info(m, state))
			}
		}
	case sdk.StateDead:
		for _, d := range b.dead {
			if d.Queue == queue {
				out = append(out, deadInfo(d))
			}
		}
	default:
		return nil, fmt.Errorf("inspect: unknown message state %q (want one of %v)", state, sdk.MessageStates)
	}
	return out, nil
}

// Messages lists a page; the cursor is the offset of the next message.
func (b *Broker) Messages(ctx context.Context, q sdk.MessageQuery) (sdk.MessagePage, error) {
	off := 0
	if q.Cursor != "" {
		n, err := strconv.Atoi(q.Cursor)
		if err != nil || n < 0 {
			return sdk.MessagePage{}, fmt.Errorf("inspect: bad cursor %q", q.Cursor)
		}
		off = n
	}
	limit := sdk.PageLimit(q.Limit)
	b.mu.Lock()
	all, err := b.snapshotLocked(b.queueName(q.Queue), q.State)
	b.unlock()
	if err != nil {
		return sdk.MessagePage{}, err
	}
	var page sdk.MessagePage
	for i := off; i < len(all); i++ {
		if !q.Filter.MatchBody(all[i].Body, all[i].Reason) {
			continue
		}
		if len(page.Messages) == limit {
			page.Next = strconv.Itoa(i)
			break
		}
		page.Messages = append(page.Messages, all[i])
	}
	return page, nil
}

// Task finds a task's message in any queue and state.
func (b *Broker) Task(ctx context.Context, ref sdk.TaskRef) (sdk.MessageInfo, error) {
	b.mu.Lock()
	defer b.unlock()
	var found []sdk.MessageInfo
	for _, q := range b.queues {
		for _, m := range q.messages() {
			found = append(found, b.info(m, sdk.StateQueued))
		}
	}
	for _, m := range b.delayed.items {
		found = append(found, b.info(m, sdk.StateDelayed))
	}
	for _, m := range b.leases.items {
		found = append(found, b.info(m, sdk.StateRunning))
	}
	for _, d := range b.dead {
		found = append(found, deadInfo(d))
	}
	for _, m := range found {
		if m.TaskID == ref.TaskID && (ref.Ref == "" || (m.Ref == ref.Ref && m.State == ref.State)) {
			return m, nil
		}
	}
	return sdk.MessageInfo{}, fmt.Errorf("task %s: %w", ref.TaskID, sdk.ErrTaskNotFound)
}

// Act applies a bulk action.
func (b *Broker) Act(ctx context.Context, a sdk.Action) (sdk.ActionResult, error) {
	if err := a.Validate(); err != nil {
		return sdk.ActionResult{}, err
	}
	now := b.now()
	b.mu.Lock()
	defer b.unlock()
	queue := b.queueName(a.Queue)
	selected := func(ref uint64, body []byte, reason string) bool {
		if len(a.Refs) > 0 {
			return slices.Contains(a.Refs, strconv.FormatUint(ref, 10))
		}
		return a.Filter.MatchBody(body, reason)
	}
	var res sdk.ActionResult
	var moved []*message
	switch a.State {
	case sdk.StateQueued:
		if q := b.queues[queue]; q != nil {
			q.remove(func(m *message) bool {
				if !selected(m.ref, m.body, "") {
					return false
				}
				res.Matched++
				if !a.DryRun {
					moved = append(moved, m)
				}
				return !a.DryRun
			})
		}
	case sdk.StateDelayed:
		for _, m := range slices.Clone(b.delayed.items) {
			if m.queue == queue && selected(m.ref, m.body, "") {
				res.Matched++
				if !a.DryRun {
					b.delayed.remove(m)
					moved = append(moved, m)
				}
			}
		}
	case sdk.StateDead:
		kept := b.dead[:0:0]
		for _, d := range b.dead {
			if d.Queue != queue || !selected(d.ref, d.Body, d.Reason) {
				kept = append(kept, d)
				continue
			}
			res.Matched++
			if a.DryRun {
				kept = append(kept, d)
				continue
			}
			moved = append(moved, &message{taskID: d.TaskID, taskName: d.TaskName, body: d.Body,
				queue: d.Queue, enqueuedAt: now, heapIndex: -1, ref: d.ref})
		}
		b.dead = kept
	}
	if a.DryRun {
		return res, nil
	}
	for _, m := range moved {
		res.Done++
		if a.Kind == sdk.ActionDelete {
			continue
		}
		if a.Target != "" {
			m.queue = a.Target
		}
		m.enqueuedAt = now
		q := b.queueLocked(m.queue)
		q.push(m)
		b.wakeListenersLocked(q)
	}
	return res, nil
}

// SetPaused pauses or resumes a queue; its listeners stop taking messages
// from it while it is paused.
func (b *Broker) SetPaused(ctx context.Context, queue string, paused bool) error {
	b.mu.Lock()
	q := b.queueLocked(b.queueName(queue))
	changed := q.paused != paused
	q.paused = paused
	listeners := len(q.listeners)
	if !paused {
		b.wakeListenersLocked(q)
	}
	b.unlock()
	if changed && paused {
		b.log.Warn("queue paused: its listeners stop fetching from it until it is resumed", "queue", q.name, "listeners", listeners)
	} else if changed {
		b.log.Info("queue resumed: its listeners fetch from it again", "queue", q.name, "listeners", listeners)
	}
	return nil
}

// Heartbeat records a worker's heartbeat.
func (b *Broker) Heartbeat(ctx context.Context, w sdk.WorkerInfo, ttl time.Duration) error {
	now := b.now()
	w.LastSeen = now
	b.mu.Lock()
	b.workers[w.ID] = workerBeat{info: w, expires: now.Add(ttl)}
	b.unlock()
	return nil
}

// Workers lists the workers whose heartbeat has not expired.
func (b *Broker) Workers(ctx context.Context) ([]sdk.WorkerInfo, error) {
	now := b.now()
	b.mu.Lock()
	defer b.unlock()
	var out []sdk.WorkerInfo
	for id, w := range b.workers {
		if now.After(w.expires) {
			delete(b.workers, id)
			continue
		}
		out = append(out, w.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Interface guards
var _ sdk.Inspector = (*Broker)(nil)
