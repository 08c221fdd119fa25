package taskiqredis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taskiq-go/taskiq/internal/backoff"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// streamListener consumes Redis streams through a consumer group: the mode
// with acks, leases, reclaim and dead letter.
//
// Leases: Redis records, per pending entry, when it was last delivered to
// (or claimed by) a consumer. An entry's lease is "idle time < lease". A
// worker extends it by re-claiming the entry for itself (extendScript),
// which resets the idle time; a worker that stopped extending (crashed,
// killed, partitioned) loses its entries to the first listener whose
// periodic XAUTOCLAIM finds them idle for longer than the lease. That claim
// is a single atomic server operation, so each expired entry goes to exactly
// one new owner: the reclaim itself never causes a double execution. The
// only way to run a message twice is a worker that is alive but did not
// extend within the lease, which is what a lease means.
type streamListener struct {
	listenerBase
	consumer    string
	lease       time.Duration
	lastReclaim time.Time
}

func newStreamListener(ctx context.Context, b *broker, queues []*queueSpec, strict bool, lease time.Duration) (*streamListener, error) {
	s := &streamListener{lease: lease, consumer: b.nextConsumerName()}
	s.init(b, queues, strict)
	s.fetch = s.fetchBatch
	if err := s.createGroups(ctx, "$"); err != nil {
		return nil, wrapErr("listen (XGROUP CREATE)", b.addr, err)
	}
	s.registerConsumers(ctx)
	s.runMover()
	return s, nil
}

// createGroups creates the consumer group of every queue (and the stream, if
// missing). start is "$" at Listen, as taskiq-redis does, and "0" when a
// group vanished while listening (Redis lost its data): everything then in
// the stream arrived after the loss and must not be skipped.
//
// Groups that exist are left alone, checked with XINFO GROUPS first: Redis
// over maxmemory refuses XGROUP CREATE (a deny-oom command) before it looks
// at whether the group exists, so a worker that always created its group
// could not start while Redis is full of queued work.
func (s *streamListener) createGroups(ctx context.Context, start string) error {
	pipe := s.b.client.Pipeline()
	infos := make([]*redis.XInfoGroupsCmd, len(s.queues))
	for i, q := range s.queues {
		infos[i] = pipe.XInfoGroups(ctx, q.key)
	}
	cmds, err := pipe.Exec(ctx)
	if err := pipelineErr(cmds, err, isNoSuchKey); err != nil {
		return err
	}
	pipe = s.b.client.Pipeline()
	creating := 0
	for i, q := range s.queues {
		groups, _ := infos[i].Result()
		if !slices.ContainsFunc(groups, func(g redis.XInfoGroup) bool { return g.Name == q.group }) {
			pipe.XGroupCreateMkStream(ctx, q.key, q.group, start)
			creating++
		}
	}
	if creating > 0 {
		all, err := pipe.Exec(ctx)
		if err := pipelineErr(all, err, isBusyGroup); err != nil {
			return err
		}
	}
	for _, q := range s.queues {
		s.b.groups.Store(q.key, struct{}{})
	}
	return nil
}

// isNoSuchKey is XINFO's answer for a stream that does not exist yet.
func isNoSuchKey(err error) bool { return err != nil && strings.Contains(err.Error(), "no such key") }

func (s *streamListener) deliveryID(q *queueSpec, entryID string) string {
	if len(s.queues) == 1 {
		return entryID
	}
	return q.name + "|" + entryID
}

// resolve finds the queue and entry of a delivery id.
func (s *streamListener) resolve(id string) (*queueSpec, string, bool) {
	if h := s.lookup(id); h != nil {
		return h.queue, h.entryID, true
	}
	if len(s.queues) == 1 {
		return s.queues[0], id, id != ""
	}
	i := strings.LastIndex(id, "|")
	if i < 0 {
		return nil, "", false
	}
	for _, q := range s.queues {
		if q.name == id[:i] {
			return q, id[i+1:], true
		}
	}
	return nil, "", false
}

// fetchBatch blocks until it has deliveries or the listener closes. Reclaim
// runs here, every lease/2, so a listener only takes over expired work when
// its worker asked for more.
func (s *streamListener) fetchBatch(ctx context.Context, max int) ([]sdk.Delivery, error) {
	bo := newBackoff()
	for {
		if ctx.Err() != nil {
			return nil, sdk.ErrClosed
		}
		now := s.b.now()
		if s.lastReclaim.IsZero() || now.Sub(s.lastReclaim) >= s.lease/2 {
			ds, err := s.reclaimAll(ctx, max)
			if err != nil {
				if end := s.recover(ctx, "reclaim", err, bo); end != nil {
					return nil, end
				}
				continue
			}
			s.ok()
			// A pass that filled the batch, or whose XAUTOCLAIM scan has not
			// reached the end of a pending list, may have left expired
			// entries behind: the next fetch continues it instead of waiting
			// another lease/2. (A busy worker asks for one or two deliveries
			// at a time; without this, N entries of a dead worker came back
			// one batch per lease/2.)
			if len(ds) < max && s.reclaimScanDone() {
				s.lastReclaim = now
				s.sweepIndexes(ctx)
			}
			if len(ds) > 0 {
				return ds, nil
			}
		}
		ds, err := s.read(ctx, min(max, s.b.opts.count))
		if err != nil {
			if end := s.recover(ctx, "read", err, bo); end != nil {
				return nil, end
			}
			continue
		}
		s.ok()
		bo.Reset()
		if len(ds) > 0 {
			return ds, nil
		}
	}
}

// sweepIndexes runs one sweep step on the task-id index of every queue;
// a failure is logged and the next pass tries again.
func (s *streamListener) sweepIndexes(ctx context.Context) {
	for _, q := range s.queues {
		if err := s.b.sweepIndex(ctx, q); err != nil {
			s.b.log.Debug("sweeping the task index failed", "queue", q.name, "error", err)
		}
	}
}

// reclaimScanDone reports whether every queue's XAUTOCLAIM cursor is back at
// the start, i.e. the last pass looked at each whole pending list.
func (s *streamListener) reclaimScanDone() bool {
	for _, q := range s.queues {
		if q.cursor != "0-0" {
			return false
		}
	}
	return true
}

// recover handles a failed listener call: a vanished group is re-created,
// anything else is logged and retried after a backoff. It returns the
// error that ends the stream: the listener closed, the credentials were
// refused, or Redis has been unreachable for unavailable_after; nil to
// retry.
func (s *streamListener) recover(ctx context.Context, op string, err error, bo *backoff.Backoff) error {
	if ctx.Err() != nil {
		return sdk.ErrClosed
	}
	if isAuthError(err) {
		s.authFailed(op, err)
		return s.endErr(op, err)
	}
	if end := s.unreachable(op, err); end != nil {
		return end
	}
	if isNoGroup(err) {
		s.b.log.Warn("consumer group missing (was Redis flushed or restarted without persistence?); re-creating it", "op", op)
		err := s.createGroups(ctx, "0")
		if err == nil {
			s.ok()
			return nil
		}
		if end := s.unreachable("listen (XGROUP CREATE)", err); end != nil {
			return end
		}
	} else {
		s.b.log.Warn("redis call failed; retrying", "op", op, "error", wrapErr(op, s.b.addr, err))
	}
	if !bo.Wait(ctx) {
		return sdk.ErrClosed
	}
	return nil
}

// read performs one XREADGROUP pass for up to n new entries.
func (s *streamListener) read(ctx context.Context, n int) ([]sdk.Delivery, error) {
	qs := s.active(ctx, s.order())
	if len(qs) == 0 {
		s.idle(ctx)
		return nil, nil
	}
	if len(qs) == 1 {
		return s.readGroup(ctx, qs, n, s.b.opts.block)
	}
	// Several queues: take from the first one (in strict or weighted order)
	// that has entries, without blocking.
	for _, q := range qs {
		ds, err := s.readGroup(ctx, []*queueSpec{q}, n, -1)
		if err != nil || len(ds) > 0 {
			return ds, err
		}
	}
	// All empty: wait for the first entry on any queue. One XREADGROUP can
	// wait on several streams only when they share the group and (in a
	// cluster) the slot; otherwise wait on the queues in turn, briefly.
	if !s.b.opts.clusterHashes && s.sameGroup() {
		return s.readGroup(ctx, qs, n, s.b.opts.block)
	}
	short := min(s.b.opts.block, 100*time.Millisecond)
	return s.readGroup(ctx, qs[:1], n, short)
}

func (s *streamListener) sameGroup() bool {
	for _, q := range s.queues {
		if q.group != s.queues[0].group {
			return false
		}
	}
	return true
}

func (s *streamListener) readGroup(ctx context.Context, qs []*queueSpec, n int, block time.Duration) ([]sdk.Delivery, error) {
	streams := make([]string, 0, 2*len(qs))
	for _, q := range qs {
		streams = append(streams, q.key)
	}
	for range qs {
		streams = append(streams, ">")
	}
	res, err := s.b.client.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: qs[0].group, Consumer: s.consumer, Streams: streams, Count: int64(n), Block: block,
	}).Result()
	if err == redis.Nil {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []sdk.Delivery
	for _, st := range res {
		q := s.byKey(st.Stream)
		if q == nil {
			continue
		}
		entries := make([]streamEntry, 0, len(st.Messages))
		for _, m := range st.Messages {
			entries = append(entries, streamEntry{id: m.ID, values: m.Values, count: 1})
		}
		out = append(out, s.admit(ctx, q, entries)...)
	}
	return out, nil
}

func (s *streamListener) byKey(key string) *queueSpec {
	for _, q := range s.queues {
		if q.key == key {
			return q
		}
	}
	return nil
}

// streamEntry is an entry read or claimed, with how often Redis delivered it.
type streamEntry struct {
	id     string
	values map[string]any
	count  int
}

// admit turns entries into deliveries. The attempt is the entry's "attempt"
// field (deliveries before a nack re-added it) plus Redis's delivery count.
// Entries without a "data" field or past max_attempts go to the dead-letter
// queue instead: nothing is redelivered forever, nothing dropped silently.
func (s *streamListener) admit(ctx context.Context, q *queueSpec, entries []streamEntry) []sdk.Delivery {
	type dead struct {
		id, reason string
		body       []byte
		attempt    int
	}
	var (
		out   []sdk.Delivery
		deads []dead
	)
	deadline := s.b.now().Add(s.lease)
	maxAttempts := s.b.opts.maxAttempts
	for _, e := range entries {
		data, ok := e.values["data"].(string)
		prior := 0
		if a, isStr := e.values["attempt"].(string); isStr {
			prior, _ = strconv.Atoi(a)
		}
		attempt := prior + e.count
		switch {
		case !ok:
			deads = append(deads, dead{id: e.id, reason: `stream entry has no "data" field`, attempt: attempt})
		case maxAttempts > 0 && attempt > maxAttempts:
			deads = append(deads, dead{id: e.id, body: []byte(data), attempt: attempt,
				reason: fmt.Sprintf("exceeded max_attempts (%d)", maxAttempts)})
		default:
			id := s.deliveryID(q, e.id)
			body := []byte(data)
			s.hold(id, &held{queue: q, entryID: e.id, body: body, attempt: attempt})
			out = append(out, sdk.Delivery{ID: id, Body: body, Queue: q.name, Attempt: attempt, LeaseDeadline: deadline})
		}
	}
	if len(deads) > 0 {
		ops := make([]settleOp, len(deads))
		for i, d := range deads {
			ops[i] = settleOp{kind: sdk.SettleDeadLetter, q: q, entryID: d.id, reason: d.reason,
				h: &held{queue: q, entryID: d.id, body: d.body, attempt: d.attempt}}
		}
		// A failure is logged by applyRequeues: the entries stay pending
		// and the reclaim after their lease tries them again.
		_ = s.applyRequeues(ctx, q, ops)
	}
	return out
}

// reclaimAll runs one reclaim step on every queue.
func (s *streamListener) reclaimAll(ctx context.Context, n int) ([]sdk.Delivery, error) {
	var out []sdk.Delivery
	for _, q := range s.active(ctx, s.queues) {
		if len(out) >= n {
			break
		}
		ds, err := s.reclaim(ctx, q, s.lease, n-len(out))
		if err != nil {
			return out, err
		}
		out = append(out, ds...)
	}
	return out, nil
}

// reclaim claims up to n entries of q idle for at least minIdle and admits
// them. The XAUTOCLAIM cursor advances across calls, so a long pending list
// is scanned a slice at a time.
func (s *streamListener) reclaim(ctx context.Context, q *queueSpec, minIdle time.Duration, n int) ([]sdk.Delivery, error) {
	res, err := reclaimScript.Run(ctx, s.b.client, []string{q.key}, q.group, s.consumer,
		minIdle.Milliseconds(), q.cursor, n).Slice()
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, nil
	}
	if c, ok := res[0].(string); ok {
		q.cursor = c
	}
	entries := make([]streamEntry, 0, len(res)-1)
	var mine []string
	for _, r := range res[1:] {
		e, ok := r.([]any)
		if !ok || len(e) != 3 {
			continue
		}
		id, _ := e[0].(string)
		flat, _ := e[1].([]any)
		count, _ := e[2].(int64)
		values := make(map[string]any, len(flat)/2)
		for i := 0; i+1 < len(flat); i += 2 {
			if k, ok := flat[i].(string); ok {
				values[k] = flat[i+1]
			}
		}
		if s.lookup(s.deliveryID(q, id)) != nil {
			mine = append(mine, id)
			continue
		}
		entries = append(entries, streamEntry{id: id, values: values, count: int(count)})
	}
	if len(mine) > 0 {
		s.keepOwn(ctx, q, mine)
	}
	return s.admit(ctx, q, entries), nil
}

// keepOwn handles entries a reclaim gave back to this listener while it
// still holds them: their lease ran out although the worker has not
// settled them (it stopped extending: frozen, starved of CPU, or cut off
// from Redis longer than the lease). Delivering them again would run the
// task a second time beside the first, in the same worker, so they are not
// delivered. The claim is undone as far as Redis allows: the idle time is
// set back to the lease (still expired, so another worker's reclaim can
// take the entry over: a worker that froze for good does not keep its
// tasks), and the delivery counter is lowered by the delivery the claim
// counted (a worker that froze does not use up max_attempts for deliveries
// that never happened). Logged once per delivery.
func (s *streamListener) keepOwn(ctx context.Context, q *queueSpec, ids []string) {
	for _, id := range ids {
		if s.markExpired(s.deliveryID(q, id)) {
			s.b.log.Warn("lease of an entry expired while it was still held by this worker; kept, not redelivered to it (the worker stopped extending its leases: was it frozen or cut off from Redis?); another worker may take it over",
				"queue", q.name, "entry", id, "lease", s.lease.String())
		}
	}
	idle := strconv.FormatInt(s.lease.Milliseconds(), 10)
	if _, err := s.runOnIDs(ctx, "put back an entry held by this worker", extendScript, q, idle, ids); err != nil {
		s.b.log.Warn("could not put back entries this worker still holds; their lease counts as extended and their next attempt number is one too high",
			"queue", q.name, "entries", len(ids), "error", err)
	}
}

func (s *streamListener) ackCmds(ctx context.Context, pipe redis.Pipeliner, q *queueSpec, ids []string) {
	pipe.XAck(ctx, q.key, q.group, ids...)
	if s.b.opts.deleteAcked {
		pipe.XDel(ctx, q.key, ids...)
	}
}

// settleOp is one resolved nack or dead letter.
type settleOp struct {
	kind    sdk.SettleKind
	q       *queueSpec
	entryID string
	h       *held // nil when this listener no longer holds the delivery
	delay   time.Duration
	reason  string
}

// Settle applies a batch: the acks of every queue in one pipeline (XACK,
// XDEL), the nacks and dead letters of each queue in one settleScript call
// (write, then XACK and XDEL, atomically per entry), then the lease
// extensions, one script call per queue. A nack or dead letter that Redis
// refuses (over maxmemory, say) leaves its entry pending: Settle returns an
// error saying so, and the entry is redelivered once its lease expires.
func (s *streamListener) Settle(ctx context.Context, ss []sdk.Settlement) error {
	var (
		acks    = map[*queueSpec][]string{}
		unindex = map[*queueSpec][]any{}
		requeue = map[*queueSpec][]settleOp{}
		extends = map[*queueSpec][]string{}
		order   []*queueSpec
	)
	seen := map[*queueSpec]bool{}
	for _, st := range ss {
		q, entryID, ok := s.resolve(st.DeliveryID)
		if !ok {
			s.b.log.Warn("settlement for an unknown delivery ignored", "delivery_id", st.DeliveryID, "kind", st.Kind.String())
			continue
		}
		if !seen[q] {
			seen[q] = true
			order = append(order, q)
		}
		switch st.Kind {
		case sdk.SettleAck:
			if h := s.release(st.DeliveryID); h != nil {
				if tid := bodyTaskID(h.body); tid != "" {
					unindex[q] = append(unindex[q], tid, idxStream(entryID))
				}
			}
			acks[q] = append(acks[q], entryID)
		case sdk.SettleExtend:
			extends[q] = append(extends[q], entryID)
		case sdk.SettleNack, sdk.SettleDeadLetter:
			// Released before the outcome is known: if Redis refuses the
			// write, the entry must come back through reclaim, which skips
			// the entries this listener holds.
			h := s.release(st.DeliveryID)
			requeue[q] = append(requeue[q], settleOp{kind: st.Kind, q: q, entryID: entryID, h: h, delay: st.Delay, reason: st.Reason})
		default:
			return fmt.Errorf("redis settle: unknown settlement kind %d for delivery %s", st.Kind, st.DeliveryID)
		}
	}
	if len(acks) > 0 {
		// The index fields of the acked messages go in the same round
		// trip; one left behind (an ack of a delivery this listener no
		// longer holds) is dropped by the sweep or the next lookup.
		err := s.retryLoop(ctx, "ack", func() error {
			pipe := s.b.client.Pipeline()
			var calls []*pipedScript
			for _, q := range order {
				if ids := acks[q]; len(ids) > 0 {
					s.ackCmds(ctx, pipe, q, ids)
				}
				if args := unindex[q]; len(args) > 0 {
					calls = append(calls, queueScript(ctx, pipe, unindexScript, []string{s.b.idsKey(q.name)}, args))
				}
			}
			cmds, err := pipe.Exec(ctx)
			if err := pipelineErr(cmds, err, isNoScript); err != nil {
				return err
			}
			if err := retryNoScript(ctx, s.b.client, calls); err != nil {
				return err
			}
			return scriptsErr(calls)
		})
		if err != nil {
			return err
		}
	}
	var errs []error
	for _, q := range order {
		if ops := requeue[q]; len(ops) > 0 {
			if err := s.applyRequeues(ctx, q, ops); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, q := range order {
		if err := s.extend(ctx, q, extends[q]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// extend renews the leases of ids, entries of q this consumer still owns.
func (s *streamListener) extend(ctx context.Context, q *queueSpec, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	owned, err := s.runOnIDs(ctx, "extend lease", extendScript, q, "", ids)
	if err != nil {
		return err
	}
	if len(owned) < len(ids) {
		s.b.log.Warn("lease extension refused: the lease had expired and another worker reclaimed the entry",
			"queue", q.name, "asked", len(ids), "extended", len(owned))
	}
	return nil
}

// runOnIDs runs one of the scripts that take "KEYS[1] stream; ARGV[1]
// group; ARGV[2] consumer; ARGV[3] arg; ARGV[4..] entry ids" and return
// entry ids.
func (s *streamListener) runOnIDs(ctx context.Context, what string, script *redis.Script, q *queueSpec, arg string, ids []string) ([]string, error) {
	var got []string
	err := s.retryLoop(ctx, what, func() error {
		var err error
		got, err = script.Run(ctx, s.b.client, []string{q.key}, append([]any{q.group, s.consumer, arg}, toAny(ids)...)...).StringSlice()
		return err
	})
	return got, err
}

// applyRequeues carries out the nacks and dead letters of one queue with
// settleScript. Its keys must share a hash slot in a cluster; the delayed
// set and the default dead-letter stream always do (they carry the queue's
// hash tag), a dead_letter_queue of its own usually does not. Such a write
// is sent first, on its own, and only the entries it stored are then acked
// (an "a" op of the script): a failure between the two leaves a dead letter
// and a pending entry, a duplicate rather than a loss.
func (s *streamListener) applyRequeues(ctx context.Context, q *queueSpec, ops []settleOp) error {
	delayed, dead := s.b.delayedKey(q.name), s.b.deadKey(q.name)
	now := s.b.now()
	var (
		local    []settleOp
		external []settleOp
	)
	for _, op := range ops {
		target := dead
		if op.kind == sdk.SettleNack {
			if op.delay <= 0 {
				local = append(local, op)
				continue
			}
			target = delayed
		}
		if s.b.sameSlot(q.key, target) {
			local = append(local, op)
		} else {
			external = append(external, op)
		}
	}
	var errs []error
	if len(external) > 0 {
		stored, err := s.writeExternal(ctx, q, external)
		if err != nil {
			errs = append(errs, err)
		}
		local = append(local, stored...)
	}
	keys := []string{q.key, q.key, q.key, s.b.idsKey(q.name)}
	if s.b.sameSlot(q.key, delayed) {
		keys[1] = delayed
	}
	if s.b.sameSlot(q.key, dead) {
		keys[2] = dead
	}
	deleteAcked := "0"
	if s.b.opts.deleteAcked {
		deleteAcked = "1"
	}
	args := []any{q.group, s.consumer, deleteAcked, s.b.opts.maxlen, now.UnixMilli(), q.name}
	for _, op := range local {
		kind, arg, tag := "x", "", ""
		switch {
		case op.kind == sdk.SettleAck:
			kind = "a"
		case op.kind == sdk.SettleDeadLetter:
			kind, arg = "d", deadReason(op.reason)
		case op.delay > 0:
			kind, arg, tag = "z", strconv.FormatInt(now.Add(op.delay).UnixMilli(), 10), newTag()
		}
		args = append(args, kind, op.entryID, arg, tag)
	}
	if len(local) == 0 {
		return errors.Join(errs...)
	}
	var codes []int64
	err := s.retryLoop(ctx, "settle", func() error {
		var err error
		codes, err = settleScript.Run(ctx, s.b.client, keys, args...).Int64Slice()
		return err
	})
	if err != nil {
		errs = append(errs, s.notApplied(q, local, err))
		return errors.Join(errs...)
	}
	for i, op := range local {
		if i >= len(codes) {
			break
		}
		switch codes[i] {
		case 0:
			s.b.log.Warn("nack or dead letter not applied: the entry is no longer pending for this worker (its lease expired and another worker reclaimed it, or an earlier try applied it)",
				"queue", q.name, "entry", op.entryID, "kind", op.kind.String())
		case 2:
			s.b.log.Warn("nacked or dead-lettered entry was no longer in the stream (trimmed by maxlen?); acked, nothing to re-send",
				"queue", q.name, "entry", op.entryID, "kind", op.kind.String())
		case 3:
			s.logDeadLetter(q, op.entryID, dead, `stream entry has no "data" field`)
		default:
			if op.kind == sdk.SettleDeadLetter {
				s.logDeadLetter(q, op.entryID, dead, deadReason(op.reason))
			}
		}
	}
	return errors.Join(errs...)
}

// writeExternal stores the dead letters and delayed members whose key lies
// in another hash slot than q's stream, for entries this consumer still
// owns, and returns ack-only ops for the ones stored.
func (s *streamListener) writeExternal(ctx context.Context, q *queueSpec, ops []settleOp) ([]settleOp, error) {
	ops, err := s.dropStale(ctx, ops)
	if err != nil {
		return nil, s.notApplied(q, ops, err)
	}
	for i := range ops {
		if ops[i].h == nil {
			h, err := s.readBack(ctx, q, ops[i].entryID)
			if err != nil {
				return nil, s.notApplied(q, ops, err)
			}
			ops[i].h = h
		}
	}
	pipe := s.b.client.Pipeline()
	cmds := make([]redis.Cmder, len(ops))
	moved := make([]string, len(ops)) // index value of a delayed member
	for i, op := range ops {
		if op.h == nil {
			continue // acked and deleted meanwhile: nothing to write
		}
		if op.kind == sdk.SettleDeadLetter {
			cmds[i] = s.b.addDeadLetter(ctx, pipe, q.name, op.entryID, op.h.body, deadReason(op.reason), op.h.attempt)
		} else {
			tag, member := delayedMemberTag(op.h.attempt, op.h.body)
			due := s.b.now().Add(op.delay).UnixMilli()
			cmds[i] = pipe.ZAdd(ctx, s.b.delayedKey(q.name), redis.Z{Score: float64(due), Member: member})
			moved[i] = idxDelayed(due, tag)
		}
	}
	_, execErr := pipe.Exec(ctx)
	// go-redis reports a batch it could not send only through Exec.
	unsent := execErr != nil && cmdsCarryNoError(cmds)
	var stored, failed []settleOp
	var firstErr error
	for i, op := range ops {
		if cmds[i] == nil {
			continue
		}
		e := cmds[i].Err()
		if unsent {
			e = execErr
		}
		if e != nil {
			if firstErr == nil {
				firstErr = e
			}
			failed = append(failed, op)
			moved[i] = ""
			continue
		}
		stored = append(stored, settleOp{kind: sdk.SettleAck, q: q, entryID: op.entryID})
		if c, ok := cmds[i].(*redis.StringCmd); ok {
			moved[i] = idxDead(c.Val())
		}
	}
	s.reindex(ctx, q, ops, moved)
	if len(failed) > 0 {
		return stored, s.notApplied(q, failed, wrapErr("dead letter or delay", s.b.addr, firstErr))
	}
	return stored, nil
}

// reindex points the index fields of messages writeExternal stored in
// another slot at their new place (moved[i], "" for none), in a round trip
// of their own: the index lives in the queue's slot. A failure leaves a
// field pointing at the acked entry, which a lookup or the sweep drops.
func (s *streamListener) reindex(ctx context.Context, q *queueSpec, ops []settleOp, moved []string) {
	pipe := s.b.client.Pipeline()
	for i, op := range ops {
		if moved[i] == "" || op.h == nil || len(moved[i]) < 3 {
			continue
		}
		if tid := bodyTaskID(op.h.body); tid != "" {
			pipe.HSet(ctx, s.b.idsKey(q.name), tid, moved[i])
		}
	}
	if pipe.Len() == 0 {
		return
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.b.log.Debug("updating the task index after a dead letter or delay failed", "queue", q.name, "error", err)
	}
}

func cmdsCarryNoError(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if c != nil && c.Err() != nil {
			return false
		}
	}
	return true
}

// notApplied logs and returns the error of nacks and dead letters Redis
// did not take: their entries stay pending (nothing was acked) and come
// back when their lease expires, from this listener or another one.
func (s *streamListener) notApplied(q *queueSpec, ops []settleOp, err error) error {
	hint := ""
	if isOOM(err) {
		hint = " (Redis is over maxmemory and refuses writes: free memory, raise maxmemory or pick an eviction policy)"
	}
	nacks, dead := 0, 0
	for _, op := range ops {
		if op.kind == sdk.SettleDeadLetter {
			dead++
		} else {
			nacks++
		}
	}
	werr := err // wrapped by retryLoop or writeExternal
	s.b.log.Error("nack or dead letter not applied; the entries stay pending and are redelivered once their lease expires"+hint,
		"queue", q.name, "nacks", nacks, "dead_letters", dead, "lease", s.lease.String(), "error", werr)
	return fmt.Errorf("%d nack/dead-letter settlement(s) of queue %s not applied; their entries stay pending and are redelivered once their lease (%s) expires%s: %w",
		len(ops), q.name, s.lease, hint, werr)
}

func (s *streamListener) logDeadLetter(q *queueSpec, entryID, deadKey, reason string) {
	s.b.log.Warn("message moved to dead-letter queue", "queue", q.name, "dead_letter_queue", deadKey,
		"original_id", entryID, "reason", reason)
}

func deadReason(r string) string {
	if r == "" {
		return "dead-lettered by the worker"
	}
	return r
}

// dropStale removes the nacks and dead letters of entries this consumer no
// longer owns (its lease expired and another worker reclaimed the entry):
// that worker now decides the entry's fate. Only the cross-slot writes of
// writeExternal need it; settleScript checks ownership itself.
func (s *streamListener) dropStale(ctx context.Context, ops []settleOp) ([]settleOp, error) {
	if len(ops) == 0 {
		return ops, nil
	}
	q := ops[0].q
	ids := make([]string, len(ops))
	for i, op := range ops {
		ids[i] = op.entryID
	}
	got, err := s.runOnIDs(ctx, "check ownership", ownedScript, q, "", ids)
	if err != nil {
		return ops, err
	}
	owned := map[string]bool{}
	for _, id := range got {
		owned[id] = true
	}
	kept := ops[:0:0]
	for _, op := range ops {
		if !owned[op.entryID] {
			s.b.log.Warn("nack or dead letter ignored: the lease had expired and another worker reclaimed the entry",
				"queue", q.name, "entry", op.entryID, "kind", op.kind.String())
			continue
		}
		kept = append(kept, op)
	}
	return kept, nil
}

// readBack fetches an entry this listener no longer holds in memory. It
// returns nil when the entry is gone (already acked and deleted).
func (s *streamListener) readBack(ctx context.Context, q *queueSpec, entryID string) (*held, error) {
	var msgs []redis.XMessage
	err := s.retryLoop(ctx, "read entry", func() error {
		var err error
		msgs, err = s.b.client.XRange(ctx, q.key, entryID, entryID).Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	data, _ := msgs[0].Values["data"].(string)
	prior := 0
	if a, ok := msgs[0].Values["attempt"].(string); ok {
		prior, _ = strconv.Atoi(a)
	}
	return &held{queue: q, entryID: entryID, body: []byte(data), attempt: prior + 1}, nil
}

// Close stops the listener. Unsettled entries stay pending in the group and
// are reclaimed by another listener once their lease expires.
func (s *streamListener) Close() error {
	s.closeBase()
	s.b.forget(s)
	return nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Interface guards
var _ sdk.Stream = (*streamListener)(nil)

// GrantedLease is the lease of every delivery and extension: an extension
// resets the entry's idle time, so it always renews a full lease
// (sdk.LeaseGranter).
func (s *streamListener) GrantedLease() time.Duration { return s.lease }
