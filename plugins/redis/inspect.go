package taskiqredis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// The inspector of the stream and list modes. Counts come from a cache
// refreshed at most every inspect_refresh with O(1) commands per queue
// (XLEN, XINFO GROUPS, LLEN, ZCARD, EXISTS); listings and bulk actions read
// the queue a chunk at a time, and a listing with a filter reads at most
// scanBudget messages per call before it returns a cursor.

const (
	// scanChunk is how many entries one read of a listing takes.
	scanChunk = 200
	// scanBudget bounds the messages one filtered listing reads.
	scanBudget = 5000
	// searchBudget bounds the messages Task reads per state when it
	// searches for a task id without a ref.
	searchBudget = 200000
)

// errPubSubInspect is what the inspector says in pub/sub mode, which holds
// no messages to inspect.
var errPubSubInspect = fmt.Errorf("redis inspector: mode \"pubsub\" keeps no messages to inspect: %w", sdk.ErrUnsupported)

// nsKey is a key of the broker's own bookkeeping, beside its default queue.
func (b *broker) nsKey(suffix string) string { return b.streamKey("") + ":" + suffix }

// queuesKey is the set of queue names kicked to or listened on.
func (b *broker) queuesKey() string { return b.nsKey("queues") }

// inspectCache holds the queue counts between refreshes, and the index
// backfill that a refresh starts in the background.
type inspectCache struct {
	mu    sync.Mutex
	at    time.Time
	stats []sdk.QueueStats
	// backfill is the running backfill's stop function and its end; nil
	// when none runs.
	stopBackfill context.CancelFunc
	backfilled   chan struct{}
}

// backfillTimeout bounds one background backfill of the task-id index.
const backfillTimeout = time.Minute

// startBackfill indexes, in the background, the entries of queues that a
// Python producer wrote since the last backfill (backfillIndex), so that a
// task looked up by id alone is found through the index even the first
// time: a process that shows the queues is one that looks tasks up. One
// backfill runs at a time; Close stops it. The caller holds b.insp.mu.
func (b *broker) startBackfill(queues []string) {
	c := &b.insp
	if b.opts.mode != modeStream || c.stopBackfill != nil {
		return
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), backfillTimeout)
	done := make(chan struct{})
	c.stopBackfill, c.backfilled = cancel, done
	go func() {
		defer close(done)
		defer cancel()
		for _, q := range queues {
			if _, err := b.backfillIndex(ctx, q, searchBudget); err != nil {
				if ctx.Err() == nil {
					b.log.Debug("indexing the task ids of a queue failed", "queue", q, "error", err)
				}
				break
			}
		}
		c.mu.Lock()
		c.stopBackfill, c.backfilled = nil, nil
		c.mu.Unlock()
	}()
}

// stopBackfilling stops a background backfill and waits for its end.
func (b *broker) stopBackfilling() {
	c := &b.insp
	c.mu.Lock()
	stop, done := c.stopBackfill, c.backfilled
	c.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// Queues returns the cached counts, refreshing them when older than
// inspect_refresh. Concurrent callers share one refresh.
func (b *broker) Queues(ctx context.Context) ([]sdk.QueueStats, error) {
	if b.opts.mode == modePubSub {
		return nil, errPubSubInspect
	}
	c := &b.insp
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stats != nil && b.now().Sub(c.at) < b.opts.inspectRefresh {
		return slices.Clone(c.stats), nil
	}
	stats, err := b.countQueues(ctx)
	if err != nil {
		return nil, wrapErr("inspect queues", b.addr, err)
	}
	c.stats, c.at = stats, b.now()
	names := make([]string, len(stats))
	for i, st := range stats {
		names[i] = st.Name
	}
	b.startBackfill(names)
	return slices.Clone(stats), nil
}

// knownQueues lists the queues to count: the default queue, inspect_queues,
// those recorded by kicks and listeners, and those of live workers.
func (b *broker) knownQueues(ctx context.Context) ([]string, []sdk.WorkerInfo, error) {
	names := map[string]bool{b.opts.queue: true}
	for _, q := range b.opts.inspectQueues {
		names[q] = true
	}
	recorded, err := b.client.SMembers(ctx, b.queuesKey()).Result()
	if err != nil && err != redis.Nil {
		return nil, nil, err
	}
	for _, q := range recorded {
		names[q] = true
	}
	ws, err := b.Workers(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range ws {
		for _, q := range w.Queues {
			names[b.queueName(q)] = true
		}
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, ws, nil
}

func (b *broker) countQueues(ctx context.Context) ([]sdk.QueueStats, error) {
	names, workers, err := b.knownQueues(ctx)
	if err != nil {
		return nil, err
	}
	now := b.now()
	type cmds struct {
		length  *redis.IntCmd
		groups  *redis.XInfoGroupsCmd
		delayed *redis.IntCmd
		dead    *redis.IntCmd
		paused  *redis.IntCmd
		running *redis.IntCmd // list mode: live running records
	}
	pipe := b.client.Pipeline()
	cs := make([]cmds, len(names))
	for i, n := range names {
		key := b.streamKey(n)
		if b.opts.mode == modeStream {
			cs[i].length = pipe.XLen(ctx, key)
			cs[i].groups = pipe.XInfoGroups(ctx, key)
		} else {
			cs[i].length = pipe.LLen(ctx, key)
			cs[i].running = pipe.ZCount(ctx, b.runningExpKey(n), "("+strconv.FormatInt(now.UnixMilli(), 10), "+inf")
		}
		cs[i].delayed = pipe.ZCard(ctx, b.delayedKey(n))
		if b.opts.deadLetter == "" || n == b.opts.queue {
			cs[i].dead = pipe.XLen(ctx, b.deadKey(n))
		}
		cs[i].paused = pipe.Exists(ctx, b.pausedKey(n))
	}
	res, err := pipe.Exec(ctx)
	if err := pipelineErr(res, err, func(e error) bool { return isNoSuchKey(e) || e == redis.Nil }); err != nil {
		return nil, err
	}
	stats := make([]sdk.QueueStats, len(names))
	oldest := b.client.Pipeline()
	firstCmds := make([]*redis.XMessageSliceCmd, len(names))
	for i, n := range names {
		st := sdk.QueueStats{Name: n, RefreshedAt: now, Delayed: cs[i].delayed.Val(), Paused: cs[i].paused.Val() > 0}
		if cs[i].dead != nil {
			st.Dead = cs[i].dead.Val()
		}
		st.Queued = cs[i].length.Val()
		if cs[i].groups != nil {
			groups, _ := cs[i].groups.Result()
			for _, g := range groups {
				if g.Name != b.groupName(n) {
					continue
				}
				st.Running, st.Consumers, st.Delivered = g.Pending, int(g.Consumers), max(0, g.EntriesRead)
				st.Queued = max(0, st.Queued-g.Pending)
				if !b.opts.deleteAcked && g.Lag >= 0 {
					st.Queued = g.Lag
				}
				start := "-"
				if g.LastDeliveredID != "" && g.LastDeliveredID != "0-0" {
					start = "(" + g.LastDeliveredID
				}
				firstCmds[i] = oldest.XRangeN(ctx, b.streamKey(n), start, "+", 1)
			}
		} else {
			// List mode: the running messages are the live running
			// records of the list listeners; the consumers are the live
			// workers that listen to the queue.
			st.Running = cs[i].running.Val()
			for _, w := range workers {
				if slices.ContainsFunc(w.Queues, func(q string) bool { return b.queueName(q) == n }) || (len(w.Queues) == 0 && n == b.opts.queue) {
					st.Consumers++
				}
			}
		}
		stats[i] = st
	}
	if oldest.Len() > 0 {
		if res, err := oldest.Exec(ctx); err != nil && !cmdsCarryNoError(res) {
			b.log.Debug("reading the oldest entries for the queue counts failed", "error", err)
		}
		for i, c := range firstCmds {
			if c == nil {
				continue
			}
			if ms := c.Val(); len(ms) == 1 && stats[i].Queued > 0 {
				if at := entryTime(ms[0].ID); !at.IsZero() {
					stats[i].OldestAge = max(0, now.Sub(at))
				}
			}
		}
	}
	return stats, nil
}

// entryTime is the time a stream entry id records (its milliseconds part).
func entryTime(id string) time.Time {
	ms, _, ok := strings.Cut(id, "-")
	if !ok {
		return time.Time{}
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// scanned is one message read by a listing, with the cursor that continues
// after it and what removing it takes (a delayed member, a list value).
type scanned struct {
	info  sdk.MessageInfo
	after string
	raw   string
}

// scanner reads the chunk of a queue's messages in one state that follows
// cursor ("" = from the start); next is "" at the end.
type scanner func(ctx context.Context, cursor string, n int) (items []scanned, next string, err error)

// describe fills the fields of a message read from its body. Scanners leave
// it to their callers, which decode only the messages they return: a
// search rejects most messages on their bytes (MessageFilter.MatchBody).
func describe(info *sdk.MessageInfo) {
	if m, err := wire.DecodeMessage(info.Body); err == nil {
		info.TaskID, info.TaskName = m.TaskID, m.TaskName
	}
}

func (b *broker) scannerFor(ctx context.Context, queue string, state sdk.MessageState) (scanner, error) {
	if b.opts.mode == modePubSub {
		return nil, errPubSubInspect
	}
	switch state {
	case sdk.StateQueued:
		if b.opts.mode == modeList {
			return b.listScanner(queue), nil
		}
		last, err := b.lastDelivered(ctx, queue)
		if err != nil {
			return nil, err
		}
		return b.streamScanner(b.streamKey(queue), queue, sdk.StateQueued, last), nil
	case sdk.StateRunning:
		if b.opts.mode == modeList {
			return b.runningScanner(queue), nil
		}
		return b.pendingScanner(queue), nil
	case sdk.StateDelayed:
		return b.delayedScanner(queue), nil
	case sdk.StateDead:
		return b.deadScanner(queue), nil
	}
	return nil, fmt.Errorf("redis inspector: unknown message state %q (want one of %v)", state, sdk.MessageStates)
}

// lastDelivered is the id of the last entry handed to the queue's group
// ("0-0" when none, or when the group does not exist yet).
func (b *broker) lastDelivered(ctx context.Context, queue string) (string, error) {
	groups, err := b.client.XInfoGroups(ctx, b.streamKey(queue)).Result()
	if err != nil && !isNoSuchKey(err) {
		return "", err
	}
	for _, g := range groups {
		if g.Name == b.groupName(queue) {
			return g.LastDeliveredID, nil
		}
	}
	return "0-0", nil
}

// streamScanner reads entries of key after the cursor, or after floor when
// starting: the entries the group has not delivered yet.
func (b *broker) streamScanner(key, queue string, state sdk.MessageState, floor string) scanner {
	return func(ctx context.Context, cursor string, n int) ([]scanned, string, error) {
		start := "-"
		switch {
		case cursor != "":
			start = "(" + cursor
		case floor != "" && floor != "0-0":
			start = "(" + floor
		}
		ms, err := b.client.XRangeN(ctx, key, start, "+", int64(n)).Result()
		if err != nil && err != redis.Nil {
			return nil, "", err
		}
		out := make([]scanned, 0, len(ms))
		for _, m := range ms {
			out = append(out, scanned{info: entryInfo(m, queue, state), after: m.ID})
		}
		next := ""
		if len(ms) == n {
			next = ms[len(ms)-1].ID
		}
		return out, next, nil
	}
}

// entryInfo describes a queue entry or a dead letter.
func entryInfo(m redis.XMessage, queue string, state sdk.MessageState) sdk.MessageInfo {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	info := sdk.MessageInfo{Ref: m.ID, Queue: queue, State: state, Body: []byte(str("data")), EnqueuedAt: entryTime(m.ID)}
	info.Attempt, _ = strconv.Atoi(str("attempt"))
	if state == sdk.StateDead {
		info.Reason = str("reason")
		if q := str("queue"); q != "" {
			info.Queue = q
		}
		if ms, err := strconv.ParseInt(str("failed_at"), 10, 64); err == nil {
			info.FailedAt = time.UnixMilli(ms)
		}
	}
	return info
}

// deadScanner reads a queue's dead letters (a shared dead_letter_queue
// holds other queues' too: they are skipped).
func (b *broker) deadScanner(queue string) scanner {
	inner := b.streamScanner(b.deadKey(queue), queue, sdk.StateDead, "")
	if b.opts.deadLetter == "" {
		return inner
	}
	return func(ctx context.Context, cursor string, n int) ([]scanned, string, error) {
		items, next, err := inner(ctx, cursor, n)
		kept := items[:0]
		for _, it := range items {
			if it.info.Queue == queue {
				kept = append(kept, it)
			}
		}
		return kept, next, err
	}
}

// pendingScanner reads the entries delivered and not yet acked: running.
func (b *broker) pendingScanner(queue string) scanner {
	key := b.streamKey(queue)
	return func(ctx context.Context, cursor string, n int) ([]scanned, string, error) {
		start := "-"
		if cursor != "" {
			start = "(" + cursor
		}
		ps, err := b.client.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: b.groupName(queue), Start: start, End: "+", Count: int64(n)}).Result()
		if err != nil && err != redis.Nil && !isNoGroup(err) && !isNoSuchKey(err) {
			return nil, "", err
		}
		if len(ps) == 0 {
			return nil, "", nil
		}
		pipe := b.client.Pipeline()
		reads := make([]*redis.XMessageSliceCmd, len(ps))
		for i, p := range ps {
			reads[i] = pipe.XRangeN(ctx, key, p.ID, p.ID, 1)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return nil, "", err
		}
		now := b.now()
		out := make([]scanned, 0, len(ps))
		for i, p := range ps {
			ms := reads[i].Val()
			if len(ms) == 0 {
				continue // acked meanwhile
			}
			info := entryInfo(ms[0], queue, sdk.StateRunning)
			info.LeaseHolder = p.Consumer
			info.Attempt += int(p.RetryCount)
			info.LeaseDeadline = now.Add(b.opts.lease - p.Idle)
			out = append(out, scanned{info: info, after: p.ID})
		}
		next := ""
		if len(ps) == n {
			next = ps[len(ps)-1].ID
		}
		return out, next, nil
	}
}

// delayedScanner reads the delayed set in due order; the cursor is an
// offset. A member is "<16 hex>|<attempt>|<body>"; its ref is the hex.
func (b *broker) delayedScanner(queue string) scanner {
	key := b.delayedKey(queue)
	return func(ctx context.Context, cursor string, n int) ([]scanned, string, error) {
		off, err := offsetCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		zs, err := b.client.ZRangeWithScores(ctx, key, int64(off), int64(off+n-1)).Result()
		if err != nil && err != redis.Nil {
			return nil, "", err
		}
		out := make([]scanned, 0, len(zs))
		for i, z := range zs {
			member, _ := z.Member.(string)
			out = append(out, scanned{info: delayedInfo(queue, member, z.Score), after: strconv.Itoa(off + i + 1), raw: member})
		}
		next := ""
		if len(zs) == n {
			next = strconv.Itoa(off + n)
		}
		return out, next, nil
	}
}

// listScanner reads a list-mode queue oldest first (the right end, where
// BRPOP takes from); the cursor is an offset, the ref a hash of the body.
func (b *broker) listScanner(queue string) scanner {
	key := b.streamKey(queue)
	return func(ctx context.Context, cursor string, n int) ([]scanned, string, error) {
		off, err := offsetCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		vals, err := b.client.LRange(ctx, key, int64(-off-n), int64(-off-1)).Result()
		if err != nil && err != redis.Nil {
			return nil, "", err
		}
		out := make([]scanned, 0, len(vals))
		for i := len(vals) - 1; i >= 0; i-- {
			info := sdk.MessageInfo{Ref: bodyRef(vals[i]), Queue: queue, State: sdk.StateQueued, Body: []byte(vals[i])}
			out = append(out, scanned{info: info, after: strconv.Itoa(off + len(out) + 1), raw: vals[i]})
		}
		next := ""
		if len(vals) == n {
			next = strconv.Itoa(off + n)
		}
		return out, next, nil
	}
}

func offsetCursor(c string) (int, error) {
	if c == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(c)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("redis inspector: bad cursor %q", c)
	}
	return n, nil
}

// bodyRef names a list entry, which has no id: a hash of its bytes.
func bodyRef(body string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(body))
	return strconv.FormatUint(h.Sum64(), 16)
}

// Messages lists one page, reading at most scanBudget messages.
func (b *broker) Messages(ctx context.Context, q sdk.MessageQuery) (sdk.MessagePage, error) {
	queue := b.queueName(q.Queue)
	scan, err := b.scannerFor(ctx, queue, q.State)
	if err != nil {
		return sdk.MessagePage{}, wrapErr("inspect messages", b.addr, err)
	}
	limit := sdk.PageLimit(q.Limit)
	var page sdk.MessagePage
	cursor, read := q.Cursor, 0
	for {
		n := scanChunk
		if q.Filter.IsZero() {
			n = limit - len(page.Messages)
		}
		items, next, err := scan(ctx, cursor, n)
		if err != nil {
			return sdk.MessagePage{}, wrapErr("inspect messages", b.addr, err)
		}
		read += len(items)
		for i, it := range items {
			if !q.Filter.MatchBody(it.info.Body, it.info.Reason) {
				continue
			}
			describe(&it.info)
			page.Messages = append(page.Messages, it.info)
			if len(page.Messages) == limit {
				if i < len(items)-1 || next != "" {
					page.Next = it.after
				}
				return page, nil
			}
		}
		if next == "" {
			return page, nil
		}
		cursor = next
		if read >= scanBudget {
			page.Next = next
			return page, nil
		}
	}
}

// Task finds a task: directly with a ref, else by reading the running,
// delayed, dead and queued messages of every known queue (at most
// searchBudget per state and queue).
func (b *broker) Task(ctx context.Context, ref sdk.TaskRef) (sdk.MessageInfo, error) {
	if ref.Ref != "" && ref.State.Valid() {
		queue := b.queueName(ref.Queue)
		key := ""
		switch {
		case ref.State == sdk.StateDead:
			key = b.deadKey(queue)
		case b.opts.mode == modeStream && ref.State != sdk.StateDelayed:
			key = b.streamKey(queue)
		}
		if key != "" {
			ms, err := b.client.XRangeN(ctx, key, ref.Ref, ref.Ref, 1).Result()
			if err != nil && err != redis.Nil {
				return sdk.MessageInfo{}, wrapErr("inspect task", b.addr, err)
			}
			if len(ms) == 1 {
				info := entryInfo(ms[0], queue, ref.State)
				describe(&info)
				if ref.TaskID == "" || info.TaskID == ref.TaskID {
					return info, nil
				}
			}
			return sdk.MessageInfo{}, fmt.Errorf("task %s: %w", ref.TaskID, sdk.ErrTaskNotFound)
		}
	}
	queues := []string{b.queueName(ref.Queue)}
	if ref.Queue == "" {
		known, _, err := b.knownQueues(ctx)
		if err != nil {
			return sdk.MessageInfo{}, wrapErr("inspect task", b.addr, err)
		}
		queues = known
	}
	if ref.Ref == "" {
		// Stream mode: the task-id index answers in two round trips; a
		// message it does not know (kicked by a Python producer, say) is
		// searched for below.
		info, ok, err := b.taskFromIndex(ctx, queues, ref.TaskID)
		if err != nil {
			return sdk.MessageInfo{}, wrapErr("inspect task", b.addr, err)
		}
		if !ok && b.opts.mode == modeStream && ref.TaskID != "" {
			// Index the entries written since the last miss (a Python
			// producer's), then ask the index again.
			var added int64
			for _, q := range queues {
				n, err := b.backfillIndex(ctx, q, searchBudget)
				if err != nil {
					return sdk.MessageInfo{}, wrapErr("inspect task", b.addr, err)
				}
				added += n
			}
			if added > 0 {
				if info, ok, err = b.taskFromIndex(ctx, queues, ref.TaskID); err != nil {
					return sdk.MessageInfo{}, wrapErr("inspect task", b.addr, err)
				}
			}
		}
		if ok && (!ref.State.Valid() || info.State == ref.State) {
			return info, nil
		}
	}
	states := []sdk.MessageState{sdk.StateRunning, sdk.StateDelayed, sdk.StateDead, sdk.StateQueued}
	if ref.State.Valid() {
		states = []sdk.MessageState{ref.State}
	}
	for _, state := range states {
		for _, queue := range queues {
			byID := sdk.MessageFilter{TaskID: ref.TaskID}
			found, err := b.find(ctx, queue, state, func(it *scanned) bool {
				if !byID.MatchBody(it.info.Body, "") {
					return false
				}
				describe(&it.info)
				return it.info.TaskID == ref.TaskID && (ref.Ref == "" || it.info.Ref == ref.Ref)
			}, searchBudget, 1)
			if err != nil {
				return sdk.MessageInfo{}, wrapErr("inspect task", b.addr, err)
			}
			if len(found) > 0 {
				return found[0].info, nil
			}
		}
	}
	return sdk.MessageInfo{}, fmt.Errorf("task %s: %w", ref.TaskID, sdk.ErrTaskNotFound)
}

// find reads the messages of queue in state, at most budget of them (0:
// all), and returns those match selects, at most want (0: all).
func (b *broker) find(ctx context.Context, queue string, state sdk.MessageState, match func(*scanned) bool, budget, want int) ([]scanned, error) {
	scan, err := b.scannerFor(ctx, queue, state)
	if err != nil {
		return nil, err
	}
	var out []scanned
	cursor, read := "", 0
	for {
		items, next, err := scan(ctx, cursor, 1000)
		if err != nil {
			return nil, err
		}
		read += len(items)
		for i := range items {
			if it := &items[i]; match(it) {
				out = append(out, *it)
				if want > 0 && len(out) == want {
					return out, nil
				}
			}
		}
		if next == "" || (budget > 0 && read >= budget) {
			return out, nil
		}
		cursor = next
	}
}

// Act applies a bulk action: the messages are selected by reading the
// queue's messages in the state (stopping early once every ref is found),
// then changed a chunk at a time, each message put in its new place before
// it is removed from the old one (a failure part way leaves a duplicate,
// never a loss).
func (b *broker) Act(ctx context.Context, a sdk.Action) (sdk.ActionResult, error) {
	if err := a.Validate(); err != nil {
		return sdk.ActionResult{}, err
	}
	queue := b.queueName(a.Queue)
	match := func(it *scanned) bool { return a.Filter.MatchBody(it.info.Body, it.info.Reason) }
	want := 0
	if len(a.Refs) > 0 {
		refs := map[string]bool{}
		for _, r := range a.Refs {
			refs[r] = true
		}
		match = func(it *scanned) bool { return refs[it.info.Ref] }
		want = len(refs)
	}
	sel, err := b.find(ctx, queue, a.State, match, 0, want)
	if err != nil {
		return sdk.ActionResult{}, wrapErr("inspect act", b.addr, err)
	}
	res := sdk.ActionResult{Matched: len(sel)}
	if a.DryRun {
		return res, nil
	}
	if a.Target != "" && len(sel) > 0 {
		// The target queue is listed from now on, as a kick to it would be.
		if err := b.client.SAdd(ctx, b.queuesKey(), b.queueName(a.Target)).Err(); err != nil {
			return sdk.ActionResult{Matched: len(sel)}, wrapErr("inspect act", b.addr, err)
		}
	}
	for chunk := range slices.Chunk(sel, 200) {
		pipe := b.client.Pipeline()
		var calls []*pipedScript
		for _, it := range chunk {
			if a.Kind != sdk.ActionDelete {
				target := it.info.Queue
				if a.Target != "" {
					target = a.Target
				}
				if c := b.enqueue(ctx, pipe, target, it.info.Body); c != nil {
					calls = append(calls, c)
				}
			}
			var was string // the index value of the removed message
			switch {
			case a.State == sdk.StateDead:
				pipe.XDel(ctx, b.deadKey(queue), it.info.Ref)
				was = idxDead(it.info.Ref)
			case a.State == sdk.StateDelayed:
				pipe.ZRem(ctx, b.delayedKey(queue), it.raw)
				was = idxDelayed(it.info.DueAt.UnixMilli(), it.info.Ref)
			case b.opts.mode == modeList:
				pipe.LRem(ctx, b.streamKey(queue), 1, it.raw)
			default:
				pipe.XDel(ctx, b.streamKey(queue), it.info.Ref)
				was = idxStream(it.info.Ref)
			}
			// After the enqueue: a message put back in its own queue has
			// its field pointed at the new entry already, and keeps it.
			if tid := bodyTaskID(it.info.Body); tid != "" && b.opts.mode == modeStream {
				calls = append(calls, queueScript(ctx, pipe, unindexScript, []string{b.idsKey(queue)}, []any{tid, was}))
			}
		}
		cmds, err := pipe.Exec(ctx)
		if err := pipelineErr(cmds, err, func(e error) bool { return isBusyGroup(e) || isNoScript(e) }); err != nil {
			return res, wrapErr("inspect act", b.addr, err)
		}
		if err := retryNoScript(ctx, b.client, calls); err != nil {
			return res, wrapErr("inspect act", b.addr, err)
		}
		if err := scriptsErr(calls); err != nil {
			return res, wrapErr("inspect act", b.addr, err)
		}
		res.Done += len(chunk)
	}
	if res.Done > 0 {
		b.log.Info("inspector action applied", "action", string(a.Kind), "queue", queue, "state", string(a.State), "messages", res.Done, "target", a.Target)
		b.insp.invalidate()
	}
	return res, nil
}

// enqueue queues body as a new message of queue on pipe (creating the
// stream's group first, once per process, as Kick does). In stream mode
// it returns the kickScript call, which indexes the message too.
func (b *broker) enqueue(ctx context.Context, pipe redis.Pipeliner, queue string, body []byte) *pipedScript {
	key := b.streamKey(queue)
	if b.opts.mode == modeList {
		pipe.LPush(ctx, key, body)
		return nil
	}
	if _, ok := b.groups.Load(key); !ok {
		pipe.XGroupCreateMkStream(ctx, key, b.groupName(queue), "$")
		b.groups.Store(key, struct{}{})
	}
	return queueScript(ctx, pipe, kickScript, []string{key, b.idsKey(queue)}, b.kickArgs(body))
}

func (c *inspectCache) invalidate() {
	c.mu.Lock()
	c.stats = nil
	c.mu.Unlock()
}

// SetPaused sets or removes the queue's paused key; listeners see it within
// pause_poll.
func (b *broker) SetPaused(ctx context.Context, queue string, paused bool) error {
	if b.opts.mode == modePubSub {
		return errPubSubInspect
	}
	queue = b.queueName(queue)
	var err error
	if paused {
		err = b.client.Set(ctx, b.pausedKey(queue), "1", 0).Err()
	} else {
		err = b.client.Del(ctx, b.pausedKey(queue)).Err()
	}
	if err != nil {
		return wrapErr("pause queue", b.addr, err)
	}
	b.client.SAdd(ctx, b.queuesKey(), queue)
	b.insp.invalidate()
	return nil
}

// workerRecord is a heartbeat as stored in the workers hash.
type workerRecord struct {
	ID        string   `json:"id"`
	Host      string   `json:"host"`
	PID       int      `json:"pid"`
	Queues    []string `json:"queues"`
	Running   int      `json:"running"`
	StartedMs int64    `json:"started_ms"`
	SeenMs    int64    `json:"last_seen_ms"`
	ExpiresMs int64    `json:"expires_ms"`
}

func (b *broker) workersKey() string { return b.nsKey("workers") }

// Heartbeat stores the worker's record in the workers hash (one HSET).
func (b *broker) Heartbeat(ctx context.Context, w sdk.WorkerInfo, ttl time.Duration) error {
	now := b.now()
	rec := workerRecord{ID: w.ID, Host: w.Host, PID: w.PID, Queues: w.Queues, Running: w.Running,
		StartedMs: w.Started.UnixMilli(), SeenMs: now.UnixMilli(), ExpiresMs: now.Add(ttl).UnixMilli()}
	if w.Started.IsZero() {
		rec.StartedMs = 0
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := b.client.HSet(ctx, b.workersKey(), w.ID, v).Err(); err != nil {
		return wrapErr("heartbeat", b.addr, err)
	}
	return nil
}

// Workers lists the live workers and removes the expired ones.
func (b *broker) Workers(ctx context.Context) ([]sdk.WorkerInfo, error) {
	all, err := b.client.HGetAll(ctx, b.workersKey()).Result()
	if err != nil && err != redis.Nil {
		return nil, wrapErr("inspect workers", b.addr, err)
	}
	now := b.now().UnixMilli()
	var out []sdk.WorkerInfo
	var expired []string
	for id, v := range all {
		var r workerRecord
		if json.Unmarshal([]byte(v), &r) != nil || r.ExpiresMs < now {
			expired = append(expired, id)
			continue
		}
		w := sdk.WorkerInfo{ID: r.ID, Host: r.Host, PID: r.PID, Queues: r.Queues, Running: r.Running, LastSeen: time.UnixMilli(r.SeenMs)}
		if r.StartedMs != 0 {
			w.Started = time.UnixMilli(r.StartedMs)
		}
		out = append(out, w)
	}
	if len(expired) > 0 {
		if err := b.client.HDel(ctx, b.workersKey(), expired...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			b.log.Debug("removing expired worker heartbeats failed", "error", err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Interface guards
var _ sdk.Inspector = (*broker)(nil)
