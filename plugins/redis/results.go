package taskiqredis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/internal/coalesce"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// resultBackend stores results as taskiq-redis does: SET <key> <json>, key
// = task id or "<prefix>:<task id>", progress under <key>__progress.
//
// WaitResult is push-based: SetResults publishes on "taskiq:result:<key>" in
// the same pipeline as the SET, and a waiter subscribed to that channel
// re-reads the key as soon as the notification arrives.
type resultBackend struct {
	client redis.UniversalClient
	addr   string
	opts   resultOptions
	log    hclog.Logger
	notify *notifier
	// reads batches concurrent GetResult calls into one pipeline.
	reads *coalesce.Coalescer[*resultRead]
}

// resultRead is one GetResult in a batch.
type resultRead struct {
	taskID string
	body   []byte
	err    error
}

func newResultBackend(_ context.Context, cfg sdk.Config) (*resultBackend, error) {
	conn, opts, err := decodeResultConfig(cfg)
	if err != nil {
		return nil, err
	}
	client, addr, log, err := connect(conn, cfg)
	if err != nil {
		return nil, err
	}
	r := &resultBackend{client: client, addr: addr, opts: opts, log: log}
	r.reads = coalesce.New(256, r.readBatch)
	r.notify = newNotifier(client, log, opts, r.checkBatch)
	return r, nil
}

func (r *resultBackend) key(taskID string) string {
	if r.opts.prefix != "" {
		return r.opts.prefix + ":" + taskID
	}
	return taskID
}

// resultChannel is the pub/sub channel announcing that key was stored.
func resultChannel(key string) string { return "taskiq:result:" + key }

// maxNotifyBody is the largest result sent in its notification; a larger
// one is announced with the token "1" and read with GET.
const maxNotifyBody = 16 << 10

// notification is what SetResults publishes for a result: the result itself
// when it is small, so a waiter needs no GET (one round trip less between
// the save and the waiter), else "1". A result body is a JSON object, never
// "1".
func notification(body []byte) any {
	if len(body) > 0 && len(body) <= maxNotifyBody {
		return body
	}
	return "1"
}

// SetResults stores the batch and announces each result, in one round trip
// (two in a cluster).
//
// A notification must never arrive before its result is readable: a waiter
// woken by it reads the key once and, finding nothing, would sleep until
// poll_fallback. One server runs the pipeline in order, so SET precedes
// PUBLISH. A cluster client sends the commands of one pipeline to their
// nodes in parallel, and the key and the channel hash to different slots,
// so there the PUBLISHes are only sent once every SET has been acknowledged.
func (r *resultBackend) SetResults(ctx context.Context, results []sdk.StoredResult) error {
	if len(results) == 0 {
		return nil
	}
	_, cluster := r.client.(*redis.ClusterClient)
	pipe := r.client.Pipeline()
	for _, res := range results {
		stored, err := r.encodeStored(res.Body)
		if err != nil {
			return fmt.Errorf("result of task %s: %w", res.TaskID, err)
		}
		pipe.Set(ctx, r.key(res.TaskID), stored, r.opts.ttl)
		if !cluster {
			pipe.Publish(ctx, resultChannel(r.key(res.TaskID)), notification(res.Body))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapErr("set results", r.addr, err)
	}
	if !cluster {
		return nil
	}
	pipe = r.client.Pipeline()
	for _, res := range results {
		pipe.Publish(ctx, resultChannel(r.key(res.TaskID)), notification(res.Body))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		// The results are stored; waiters find them at their next poll.
		r.log.Warn("result notification failed; waiters fall back to polling", "error", wrapErr("notify results", r.addr, err))
	}
	return nil
}

// GetResult reads a result (and deletes it when keep_results is false).
func (r *resultBackend) GetResult(ctx context.Context, taskID string) ([]byte, error) {
	rd := &resultRead{taskID: taskID}
	if err := r.reads.Do(ctx, rd); err != nil {
		return nil, wrapErr("get result", r.addr, err)
	}
	if errors.Is(rd.err, redis.Nil) {
		return nil, fmt.Errorf("task %s: %w", taskID, sdk.ErrNotFound)
	}
	if rd.err != nil {
		return nil, wrapErr("get result", r.addr, rd.err)
	}
	return r.decodeStored("result of task", taskID, rd.body)
}

// readBatch reads a batch of results in one pipeline (GETDEL with
// keep_results off). A missing key is that read's redis.Nil.
func (r *resultBackend) readBatch(ctx context.Context, reads []*resultRead) error {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(reads))
	for i, rd := range reads {
		if r.opts.keepResults {
			cmds[i] = pipe.Get(ctx, r.key(rd.taskID))
		} else {
			cmds[i] = pipe.GetDel(ctx, r.key(rd.taskID))
		}
	}
	// A failed command carries its own error (and Exec returns the first);
	// a failure before any command ran (no connection, authentication)
	// leaves the commands without one and is the whole batch's.
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		own := false
		for _, c := range cmds {
			own = own || c.Err() != nil
		}
		if !own {
			return err
		}
	}
	for i, rd := range reads {
		rd.body, rd.err = cmds[i].Bytes()
	}
	return nil
}

// IsReady reports whether a result is stored.
func (r *resultBackend) IsReady(ctx context.Context, taskID string) (bool, error) {
	n, err := r.client.Exists(ctx, r.key(taskID)).Result()
	if err != nil {
		return false, wrapErr("is ready", r.addr, err)
	}
	return n > 0, nil
}

// SetProgress stores a progress report, with the results' TTL.
func (r *resultBackend) SetProgress(ctx context.Context, taskID string, progress []byte) error {
	stored, err := r.encodeStored(progress)
	if err != nil {
		return fmt.Errorf("progress of task %s: %w", taskID, err)
	}
	if err := r.client.Set(ctx, r.key(taskID)+"__progress", stored, r.opts.ttl).Err(); err != nil {
		return wrapErr("set progress", r.addr, err)
	}
	return nil
}

// GetProgress reads the last progress report.
func (r *resultBackend) GetProgress(ctx context.Context, taskID string) ([]byte, error) {
	b, err := r.client.Get(ctx, r.key(taskID)+"__progress").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("progress of task %s: %w", taskID, sdk.ErrNotFound)
	}
	if err != nil {
		return nil, wrapErr("get progress", r.addr, err)
	}
	return r.decodeStored("progress of task", taskID, b)
}

// WaitResult waits through WatchResult.
func (r *resultBackend) WaitResult(ctx context.Context, taskID string) ([]byte, error) {
	return sdk.WaitWatched(ctx, r, taskID)
}

// WatchResult subscribes to the result's channel first and only then reads
// the key, so a result saved between the two is found by the read and one
// saved after it is announced on the subscription. Every poll_fallback the
// key is read again, so a notification lost to a reconnect still ends the
// watch. A watch is a small struct: subscriptions, reads and the polling
// are shared by all of them, in batches (one SUBSCRIBE per run of new
// watches, one pipeline of GETs per batch of reads).
func (r *resultBackend) WatchResult(taskID string, done func([]byte, error)) func() bool {
	return r.notify.watch(taskID, resultChannel(r.key(taskID)), done)
}

// checkBatch reads the results of a batch of watches in one pipeline and
// ends the watches whose result is stored (or unreadable). Redis errors
// leave the watches to the next poll.
func (r *resultBackend) checkBatch(ctx context.Context, ws []*waiter) error {
	ws = r.notify.pending(ws)
	if len(ws) == 0 {
		return nil
	}
	reads := make([]*resultRead, len(ws))
	for i, w := range ws {
		reads[i] = &resultRead{taskID: w.taskID}
	}
	if err := r.readBatch(ctx, reads); err != nil {
		r.log.Warn("reading results failed while waiting; retrying", "results", len(ws), "error", err)
		return nil
	}
	for i, rd := range reads {
		switch {
		case errors.Is(rd.err, redis.Nil):
		case rd.err != nil:
			r.log.Warn("reading result failed while waiting; retrying", "task_id", rd.taskID, "error", rd.err)
		default:
			body, err := r.decodeStored("result of task", rd.taskID, rd.body)
			r.notify.finish(ws[i], body, err)
		}
	}
	return nil
}

// Close releases the connections.
func (r *resultBackend) Close(context.Context) error {
	r.notify.close()
	r.reads.Close()
	return r.client.Close()
}

// notifier multiplexes result watches over one pub/sub connection: a
// channel is subscribed while at least one watch wants it.
type notifier struct {
	client redis.UniversalClient
	log    hclog.Logger
	opts   resultOptions

	mu      sync.Mutex
	ps      *redis.PubSub
	waiters map[string]map[*waiter]struct{}
	// unconfirmed counts SUBSCRIBEs sent per channel whose confirmation has
	// not arrived; a channel is live when it drops to zero.
	unconfirmed map[string]int
	// subs sends SUBSCRIBEs and UNSUBSCRIBEs in the order they are posted
	// (under mu), a run of one kind as one command, so a thousand watches
	// arriving together cost a few commands.
	subs *coalesce.Coalescer[subOp]
	// checks reads the keys of watches (first read, notification without
	// the body, poll) in pipelines.
	checks *coalesce.Coalescer[*waiter]
	closed bool
	done   chan struct{}
	// poller is running while there are watches; quit stops it.
	poller bool
	quit   chan struct{}
	polled chan struct{}
}

type subOp struct {
	unsubscribe bool
	channel     string
}

// waiter is one watch. Its fields but taskID, channel and done are guarded
// by notifier.mu.
type waiter struct {
	taskID  string
	channel string
	done    func([]byte, error)
	// isLive: the subscription is confirmed and the first read posted.
	isLive   bool
	finished bool
	// checked is when the key was last read (or the watch started).
	checked time.Time
}

func newNotifier(client redis.UniversalClient, log hclog.Logger, opts resultOptions, check func(context.Context, []*waiter) error) *notifier {
	n := &notifier{client: client, log: log, opts: opts, waiters: map[string]map[*waiter]struct{}{},
		unconfirmed: map[string]int{}, done: make(chan struct{}), quit: make(chan struct{})}
	n.subs = coalesce.New(512, n.sendSubs)
	n.checks = coalesce.New(256, check)
	return n
}

func (n *notifier) watch(taskID, channel string, done func([]byte, error)) func() bool {
	w := &waiter{taskID: taskID, channel: channel, done: done, checked: time.Now()}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		w.finished = true
		go done(nil, fmt.Errorf("wait for result of task %s: %w", taskID, sdk.ErrUnavailable))
		return func() bool { return false }
	}
	if n.ps == nil {
		n.ps = n.client.Subscribe(context.Background())
		go n.run(n.ps)
	}
	if !n.poller {
		n.poller = true
		n.polled = make(chan struct{})
		go n.poll(n.polled)
	}
	set := n.waiters[channel]
	if set == nil {
		set = map[*waiter]struct{}{}
		n.waiters[channel] = set
		n.unconfirmed[channel]++
		n.subs.Post(subOp{channel: channel})
	} else if n.unconfirmed[channel] == 0 {
		w.isLive = true
		n.checks.Post(w)
	}
	set[w] = struct{}{}
	return func() bool { return n.stop(w) }
}

// stop withdraws w: false once it has been answered.
func (n *notifier) stop(w *waiter) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if w.finished {
		return false
	}
	w.finished = true
	n.removeLocked(w)
	return true
}

// pending keeps the watches of ws not yet answered or withdrawn (a read
// with keep_results off deletes the result: none for a watch withdrawn).
func (n *notifier) pending(ws []*waiter) []*waiter {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := ws[:0:0]
	for _, w := range ws {
		if !w.finished {
			out = append(out, w)
		}
	}
	return out
}

// finish answers w unless it was answered or withdrawn.
func (n *notifier) finish(w *waiter, body []byte, err error) {
	n.mu.Lock()
	mine := !w.finished
	if mine {
		w.finished = true
		n.removeLocked(w)
	}
	n.mu.Unlock()
	if mine {
		w.done(body, err)
	}
}

func (n *notifier) removeLocked(w *waiter) {
	set := n.waiters[w.channel]
	delete(set, w)
	if len(set) == 0 && set != nil {
		delete(n.waiters, w.channel)
		if n.ps != nil && !n.closed {
			n.subs.Post(subOp{unsubscribe: true, channel: w.channel})
		}
	}
}

// poll reads, every poll_fallback, the keys of the watches not read for
// that long, and ends once no watch is left.
func (n *notifier) poll(polled chan struct{}) {
	defer close(polled)
	t := time.NewTicker(n.opts.pollFallback)
	defer t.Stop()
	var due []*waiter
	for {
		select {
		case <-n.quit:
			return
		case now := <-t.C:
			n.mu.Lock()
			if len(n.waiters) == 0 || n.closed {
				n.poller = false
				n.mu.Unlock()
				return
			}
			due = due[:0]
			for _, set := range n.waiters {
				for w := range set {
					if now.Sub(w.checked) >= n.opts.pollFallback {
						w.checked = now
						due = append(due, w)
					}
				}
			}
			n.checks.Post(due...)
			n.mu.Unlock()
			clear(due)
		}
	}
}

// sendSubs sends a batch of ops, each run of one kind as one SUBSCRIBE or
// UNSUBSCRIBE.
func (n *notifier) sendSubs(ctx context.Context, ops []subOp) error {
	n.mu.Lock()
	ps, closed := n.ps, n.closed
	n.mu.Unlock()
	for len(ops) > 0 && !closed {
		k := 1
		for k < len(ops) && ops[k].unsubscribe == ops[0].unsubscribe {
			k++
		}
		channels := make([]string, k)
		for i, op := range ops[:k] {
			channels[i] = op.channel
		}
		if ops[0].unsubscribe {
			_ = ps.Unsubscribe(ctx, channels...)
		} else if err := ps.Subscribe(ctx, channels...); err != nil {
			n.log.Warn("subscribing for results failed; their waiters fall back to polling", "channels", len(channels), "error", err)
		}
		ops = ops[k:]
	}
	return nil
}

// run dispatches confirmations and notifications. go-redis reconnects the
// pub/sub connection and re-subscribes by itself after a failure.
func (n *notifier) run(ps *redis.PubSub) {
	defer close(n.done)
	var ready []*waiter
	for v := range ps.ChannelWithSubscriptions(redis.WithChannelSize(1024)) {
		ready = ready[:0]
		var body []byte
		n.mu.Lock()
		switch m := v.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				if n.unconfirmed[m.Channel] > 0 {
					n.unconfirmed[m.Channel]--
				}
				if n.unconfirmed[m.Channel] == 0 {
					delete(n.unconfirmed, m.Channel)
					for w := range n.waiters[m.Channel] {
						if !w.isLive {
							w.isLive = true
							n.checks.Post(w)
						}
					}
				}
			}
		case *redis.Message:
			// The notification carries the result; with keep_results off
			// the key must be read, to delete it.
			direct := n.opts.keepResults && m.Payload != "1" && m.Payload != ""
			if direct {
				body = []byte(m.Payload)
			}
			for w := range n.waiters[m.Channel] {
				if direct {
					w.finished = true
					ready = append(ready, w)
				} else {
					n.checks.Post(w)
				}
			}
			for _, w := range ready {
				n.removeLocked(w)
			}
		}
		n.mu.Unlock()
		for i, w := range ready {
			w.done(body, nil)
			ready[i] = nil
		}
	}
}

func (n *notifier) close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	ps, polled := n.ps, n.polled
	var left []*waiter
	for ch, set := range n.waiters {
		for w := range set {
			w.finished = true
			left = append(left, w)
		}
		delete(n.waiters, ch)
	}
	n.mu.Unlock()
	close(n.quit)
	if polled != nil {
		<-polled
	}
	if ps != nil {
		_ = ps.Close()
		<-n.done
	}
	n.subs.Close()
	n.checks.Close()
	for _, w := range left {
		w.done(nil, fmt.Errorf("wait for result of task %s: %w", w.taskID, sdk.ErrUnavailable))
	}
}

// Interface guards
var (
	_ sdk.ResultBackend = (*resultBackend)(nil)
	_ sdk.ResultWaiter  = (*resultBackend)(nil)
	_ sdk.ResultWatcher = (*resultBackend)(nil)
)
