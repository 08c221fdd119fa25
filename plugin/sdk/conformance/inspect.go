package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Inspected is what the inspector suite tests: one broker and its
// inspection calls, served by the same configured plugin process (with
// sdktest.Launch: c.Broker() and c.Inspector()). Canceller is nil when the
// broker does not claim sdk.CapCancel.
type Inspected struct {
	Broker    sdk.Broker
	Inspector sdk.Inspector
	Canceller sdk.Canceller
}

// TestInspector runs the inspection conformance suite: counts, listings with
// filters and cursors, one task, bulk actions by ids and by filter with dry
// runs, pause and resume, heartbeats and, with sdk.CapCancel, tombstones.
// launch must return a fresh broker with its own default queue, like
// TestBroker's. Counts may be cached: the suite waits (up to the suite's
// timeout) for them to show what it did.
func TestInspector(t *testing.T, launch func(t *testing.T) Inspected, caps []string, opts ...Option) {
	o := newOptions(opts)
	run := func(name string, need []string, f func(t *testing.T, b *inspectBundle)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			skipUnclaimed(t, o, caps, name, need, "broker")
			in := launch(t)
			require.NotNil(t, in.Inspector, "the launch function returned no inspector")
			b := &inspectBundle{bundle: &bundle{t: t, b: in.Broker, o: o, caps: caps, prefix: "insp-" + randomHex(6), sent: map[string][]byte{}}, in: in}
			f(t, b)
		})
	}
	run("Counts", []string{sdk.CapInspect, sdk.CapDelay, sdk.CapDeadLetter}, inspectCounts)
	run("ListAndFilter", []string{sdk.CapInspect}, inspectList)
	run("Task", []string{sdk.CapInspect}, inspectTask)
	run("DeadLetterActions", []string{sdk.CapInspect, sdk.CapDeadLetter}, inspectDeadActions)
	run("DeleteQueued", []string{sdk.CapInspect}, inspectDeleteQueued)
	run("PauseResume", []string{sdk.CapInspect}, inspectPause)
	run("Workers", []string{sdk.CapInspect}, inspectWorkers)
	run("Cancel", []string{sdk.CapCancel}, inspectCancel)
}

type inspectBundle struct {
	*bundle
	in Inspected
}

// labelled builds a message of task name with one label and an argument.
func (b *inspectBundle) labelled(queue, name, label, arg string) sdk.Outgoing {
	n := b.seq.Add(1)
	id := fmt.Sprintf("%s-%d", b.prefix, n)
	m := &wire.Message{TaskID: id, TaskName: name, Args: []json.RawMessage{json.RawMessage(fmt.Sprintf("%q", arg))}}
	m.SetLabel("tenant", label)
	if queue != "" {
		m.SetLabel(wire.LabelQueueName, queue)
	}
	body, err := m.MarshalJSON()
	require.NoError(b.t, err)
	return sdk.Outgoing{TaskID: id, TaskName: name, Body: body, Queue: queue}
}

func (b *inspectBundle) stats(queue string) sdk.QueueStats {
	b.t.Helper()
	qs, err := b.in.Inspector.Queues(b.ctx())
	require.NoError(b.t, err, "Queues")
	for _, q := range qs {
		if q.Name == queue {
			return q
		}
	}
	return sdk.QueueStats{Name: queue}
}

// eventually waits, up to the suite's timeout, for cond.
func (b *inspectBundle) eventually(what string, cond func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(b.o.timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %s waiting for %s", b.o.timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *inspectBundle) list(queue string, state sdk.MessageState, f sdk.MessageFilter, limit int) []sdk.MessageInfo {
	b.t.Helper()
	var out []sdk.MessageInfo
	cursor := ""
	for range 1000 {
		page, err := b.in.Inspector.Messages(b.ctx(), sdk.MessageQuery{Queue: queue, State: state, Filter: f, Cursor: cursor, Limit: limit})
		require.NoError(b.t, err, "Messages %s %s", queue, state)
		require.LessOrEqual(b.t, len(page.Messages), limit, "a page is bounded by its limit")
		out = append(out, page.Messages...)
		if page.Next == "" {
			return out
		}
		cursor = page.Next
	}
	b.t.Fatal("Messages kept returning a cursor")
	return nil
}

func taskIDs(ms []sdk.MessageInfo) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.TaskID
	}
	slices.Sort(ids)
	return ids
}

func outIDs(os ...sdk.Outgoing) []string {
	ids := make([]string, len(os))
	for i, o := range os {
		ids[i] = o.TaskID
	}
	slices.Sort(ids)
	return ids
}

// inspectCounts: queued, delayed, running and dead counts of a queue.
func inspectCounts(t *testing.T, b *inspectBundle) {
	q := b.queue("counts")
	b.kick(b.msgs(q, 4)...)
	late := b.msg(q)
	late.Delay = time.Hour
	b.kick(late)
	// A prefetch of 1: the dead-lettered delivery's credit brings exactly
	// one more message to the stream, which then holds it (running).
	s := b.listen(sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}, Lease: time.Minute, Prefetch: 1})
	b.settle(s, sdk.SettleDeadLetter, b.recvOne(s))
	// A broker that is not ackable (a popped list) cannot see what its
	// workers hold: its running count is not checked.
	ackable := sdk.Has(b.caps, sdk.CapAckable)
	b.eventually("counts queued 2, delayed 1, running 1, dead 1", func() bool {
		st := b.stats(q)
		return st.Queued == 2 && st.Delayed == 1 && (st.Running == 1 || !ackable) && st.Dead == 1
	})
	st := b.stats(q)
	if ackable {
		require.GreaterOrEqual(t, st.Consumers, 1, "the open stream is a consumer")
	}
	require.True(t, st.Delivered == 0 || st.Delivered == 2, "two deliveries were made; Delivered is %d (0 means not counted)", st.Delivered)
}

// inspectList: listings by state, paginated, filtered by task name, label,
// task id and text.
func inspectList(t *testing.T, b *inspectBundle) {
	q := b.queue("list")
	a1 := b.labelled(q, "billing.charge", "acme", "invoice-17")
	a2 := b.labelled(q, "billing.charge", "globex", "invoice-18")
	a3 := b.labelled(q, "mail.send", "acme", "welcome")
	more := b.msgs(q, 4)
	b.kick(append([]sdk.Outgoing{a1, a2, a3}, more...)...)

	all := b.list(q, sdk.StateQueued, sdk.MessageFilter{}, 2)
	require.Equal(t, outIDs(append([]sdk.Outgoing{a1, a2, a3}, more...)...), taskIDs(all), "every queued message, once, over pages of 2")
	for _, m := range all {
		require.Equal(t, sdk.StateQueued, m.State)
		require.Equal(t, q, m.Queue)
		require.NotEmpty(t, m.Ref, "a listed message has a ref")
		require.NotEmpty(t, m.Body)
	}
	require.Equal(t, outIDs(a1, a2), taskIDs(b.list(q, sdk.StateQueued, sdk.MessageFilter{TaskName: "billing.charge"}, 10)), "filter by task name")
	require.Equal(t, outIDs(a1, a3), taskIDs(b.list(q, sdk.StateQueued, sdk.MessageFilter{Labels: map[string]string{"tenant": "acme"}}, 10)), "filter by label")
	require.Equal(t, outIDs(a2), taskIDs(b.list(q, sdk.StateQueued, sdk.MessageFilter{Text: "invoice-18"}, 10)), "filter by text in args")
	require.Equal(t, outIDs(a3), taskIDs(b.list(q, sdk.StateQueued, sdk.MessageFilter{TaskID: a3.TaskID}, 1)), "filter by task id")
	require.Empty(t, b.list(q, sdk.StateDead, sdk.MessageFilter{}, 10), "nothing is dead")

	if !sdk.Has(b.caps, sdk.CapAckable) {
		return // a popped message is the worker's alone: nothing to list as running
	}
	s := b.listen(sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}, Lease: time.Minute, Prefetch: 1})
	d := b.recvOne(s)
	running := b.list(q, sdk.StateRunning, sdk.MessageFilter{}, 10)
	require.Len(t, running, 1, "the delivery held by the stream is running")
	require.Equal(t, b.mustID(d), running[0].TaskID)
}

// inspectTask: one task by id, by ref, and a task the broker does not hold.
func inspectTask(t *testing.T, b *inspectBundle) {
	q := b.queue("task")
	m := b.labelled(q, "report.build", "acme", "q3")
	b.kick(b.msg(q), m, b.msg(q))
	got, err := b.in.Inspector.Task(b.ctx(), sdk.TaskRef{TaskID: m.TaskID})
	require.NoError(t, err, "Task by id")
	require.Equal(t, m.TaskID, got.TaskID)
	require.Equal(t, "report.build", got.TaskName)
	require.Equal(t, sdk.StateQueued, got.State)
	require.JSONEq(t, string(m.Body), string(got.Body))
	byRef, err := b.in.Inspector.Task(b.ctx(), sdk.TaskRef{TaskID: m.TaskID, Queue: q, State: got.State, Ref: got.Ref})
	require.NoError(t, err, "Task by ref")
	require.Equal(t, m.TaskID, byRef.TaskID)
	_, err = b.in.Inspector.Task(b.ctx(), sdk.TaskRef{TaskID: b.prefix + "-missing"})
	require.ErrorIs(t, err, sdk.ErrTaskNotFound)
	require.ErrorIs(t, err, sdk.ErrNotFound, "ErrTaskNotFound wraps ErrNotFound")
}

// inspectDeadActions: dry runs count, requeue by ids and by filter puts dead
// letters back as deliverable messages, delete by filter removes them.
func inspectDeadActions(t *testing.T, b *inspectBundle) {
	q := b.queue("dead")
	x1 := b.labelled(q, "sync.pull", "acme", "one")
	x2 := b.labelled(q, "sync.pull", "acme", "two")
	y := b.labelled(q, "sync.push", "globex", "three")
	z := b.labelled(q, "sync.push", "globex", "four")
	b.kick(x1, x2, y, z)
	s := b.listen(sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}, Lease: time.Minute})
	ds := b.recv(s, 4, 4)
	ss := settlements(sdk.SettleDeadLetter, ds)
	for i := range ss {
		ss[i].Reason = "boom: connection refused"
	}
	require.NoError(t, s.Settle(b.ctx(), ss))
	var dead []sdk.MessageInfo
	b.eventually("4 dead letters listed", func() bool {
		dead = b.list(q, sdk.StateDead, sdk.MessageFilter{}, 10)
		return len(dead) == 4
	})
	require.Equal(t, "boom: connection refused", dead[0].Reason)

	ctx := b.ctx()
	dry, err := b.in.Inspector.Act(ctx, sdk.Action{Kind: sdk.ActionRequeue, Queue: q, State: sdk.StateDead,
		Filter: sdk.MessageFilter{TaskName: "sync.pull"}, DryRun: true})
	require.NoError(t, err)
	require.Equal(t, sdk.ActionResult{Matched: 2}, dry, "a dry run counts and does nothing")
	require.Len(t, b.list(q, sdk.StateDead, sdk.MessageFilter{}, 10), 4, "the dry run changed nothing")

	res, err := b.in.Inspector.Act(ctx, sdk.Action{Kind: sdk.ActionRequeue, Queue: q, State: sdk.StateDead,
		Filter: sdk.MessageFilter{Labels: map[string]string{"tenant": "acme"}, Text: "connection refused"}})
	require.NoError(t, err)
	require.Equal(t, sdk.ActionResult{Matched: 2, Done: 2}, res, "requeue by filter (label and reason text)")
	back := b.recv(s, 2, 2)
	backIDs := []string{b.mustID(back[0]), b.mustID(back[1])}
	slices.Sort(backIDs)
	require.Equal(t, outIDs(x1, x2), backIDs, "requeued dead letters are delivered again")
	b.settle(s, sdk.SettleAck, back...)

	var yRef string
	for _, m := range b.list(q, sdk.StateDead, sdk.MessageFilter{}, 10) {
		if m.TaskID == y.TaskID {
			yRef = m.Ref
		}
	}
	require.NotEmpty(t, yRef, "dead letter of %s listed", y.TaskID)
	res, err = b.in.Inspector.Act(ctx, sdk.Action{Kind: sdk.ActionRequeue, Queue: q, State: sdk.StateDead, Refs: []string{yRef}})
	require.NoError(t, err)
	require.Equal(t, sdk.ActionResult{Matched: 1, Done: 1}, res, "requeue by ref")
	require.Equal(t, y.TaskID, b.mustID(b.recvOne(s)))

	res, err = b.in.Inspector.Act(ctx, sdk.Action{Kind: sdk.ActionDelete, Queue: q, State: sdk.StateDead})
	require.NoError(t, err)
	require.Equal(t, sdk.ActionResult{Matched: 1, Done: 1}, res, "delete by the zero filter: every dead letter of the queue")
	require.Empty(t, b.list(q, sdk.StateDead, sdk.MessageFilter{}, 10))

	_, err = b.in.Inspector.Act(ctx, sdk.Action{Kind: sdk.ActionDelete, Queue: q, State: sdk.StateRunning})
	require.Error(t, err, "running messages cannot be acted on")
}

// inspectDeleteQueued: a queued message deleted by ref is never delivered.
func inspectDeleteQueued(t *testing.T, b *inspectBundle) {
	q := b.queue("delq")
	gone, kept := b.msg(q), b.msg(q)
	b.kick(gone, kept)
	var ref string
	for _, m := range b.list(q, sdk.StateQueued, sdk.MessageFilter{}, 10) {
		if m.TaskID == gone.TaskID {
			ref = m.Ref
		}
	}
	res, err := b.in.Inspector.Act(b.ctx(), sdk.Action{Kind: sdk.ActionDelete, Queue: q, State: sdk.StateQueued, Refs: []string{ref}})
	require.NoError(t, err)
	require.Equal(t, 1, res.Done)
	s := b.listen(sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}})
	require.Equal(t, kept.TaskID, b.mustID(b.recvOne(s)), "the deleted message is not delivered")
}

// inspectPause: a paused queue delivers nothing, and shows as paused; once
// resumed it delivers what was kicked meanwhile.
func inspectPause(t *testing.T, b *inspectBundle) {
	q := b.queue("pause")
	require.NoError(t, b.in.Inspector.SetPaused(b.ctx(), q, true))
	s := b.listen(sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}})
	m := b.msg(q)
	b.kick(m)
	b.eventually("the queue shows as paused", func() bool { return b.stats(q).Paused })
	b.requireNothing(s, 1500*time.Millisecond, "a paused queue must not deliver")
	require.NoError(t, b.in.Inspector.SetPaused(b.ctx(), q, false))
	require.Equal(t, m.TaskID, b.mustID(b.recvOne(s)), "a resumed queue delivers")
}

// inspectWorkers: a heartbeat lists the worker until its ttl passes.
func inspectWorkers(t *testing.T, b *inspectBundle) {
	w := sdk.WorkerInfo{ID: b.prefix + "-w1", Host: "host-a", PID: 4242, Queues: []string{b.queue("w")}, Running: 3,
		Started: time.UnixMilli(time.Now().Add(-time.Minute).UnixMilli())}
	require.NoError(t, b.in.Inspector.Heartbeat(b.ctx(), w, time.Hour))
	short := sdk.WorkerInfo{ID: b.prefix + "-w2", Host: "host-b", PID: 7}
	require.NoError(t, b.in.Inspector.Heartbeat(b.ctx(), short, time.Second))
	ws, err := b.in.Inspector.Workers(b.ctx())
	require.NoError(t, err)
	var got *sdk.WorkerInfo
	for i := range ws {
		if ws[i].ID == w.ID {
			got = &ws[i]
		}
	}
	require.NotNil(t, got, "the worker is listed")
	require.Equal(t, w.Host, got.Host)
	require.Equal(t, w.PID, got.PID)
	require.Equal(t, w.Queues, got.Queues)
	require.Equal(t, w.Running, got.Running)
	require.True(t, w.Started.Equal(got.Started), "started %v, got %v", w.Started, got.Started)
	require.False(t, got.LastSeen.IsZero(), "the broker records when it last heard from the worker")
	b.eventually("the worker whose ttl passed is gone", func() bool {
		ws, err := b.in.Inspector.Workers(b.ctx())
		require.NoError(t, err)
		return !slices.ContainsFunc(ws, func(x sdk.WorkerInfo) bool { return x.ID == short.ID })
	})
}

// inspectCancel: a watcher gets the tombstones that exist when it starts
// (in its first call, made even when there is none), then every new one.
func inspectCancel(t *testing.T, b *inspectBundle) {
	c := b.in.Canceller
	require.NotNil(t, c, "the broker claims %q but the launch function returned no Canceller", sdk.CapCancel)
	// Without any tombstone, the first call still comes (empty): a worker
	// waits for it before it takes a message.
	first := make(chan []string, 1)
	fctx, fcancel := context.WithCancel(b.ctx())
	fdone := make(chan error, 1)
	go func() {
		var once sync.Once
		fdone <- c.WatchCancels(fctx, func(ids []string) { once.Do(func() { first <- ids }) })
	}()
	select {
	case ids := <-first:
		require.Empty(t, ids, "no tombstone exists yet")
	case <-time.After(b.o.timeout):
		t.Fatal("WatchCancels made no first call")
	}
	fcancel()
	require.NoError(t, <-fdone)
	early, late := b.prefix+"-early", b.prefix+"-late"
	require.NoError(t, c.Cancel(b.ctx(), early))
	ctx, cancel := context.WithCancel(b.ctx())
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
		got  = make(chan struct{}, 16)
	)
	done := make(chan error, 1)
	go func() {
		done <- c.WatchCancels(ctx, func(ids []string) {
			mu.Lock()
			for _, id := range ids {
				seen[id] = true
			}
			mu.Unlock()
			got <- struct{}{}
		})
	}()
	has := func(id string) bool { mu.Lock(); defer mu.Unlock(); return seen[id] }
	wait := func(id string) {
		timeout := time.After(b.o.timeout)
		for !has(id) {
			select {
			case <-got:
			case <-timeout:
				t.Fatalf("the watcher never saw the tombstone of %s", id)
			}
		}
	}
	wait(early)
	require.NoError(t, c.Cancel(b.ctx(), late))
	wait(late)
	cancel()
	require.NoError(t, <-done, "WatchCancels returns nil once its context ends")
}
