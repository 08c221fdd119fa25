package taskiqredis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// broker is the Redis broker in one of its three modes. The mode decides
// which listener Listen opens and which command Kick sends; keys, delay and
// dead letter are shared.
type broker struct {
	client redis.UniversalClient
	addr   string
	opts   brokerOptions
	log    hclog.Logger
	// now is the clock for due times and lease deadlines; tests replace it.
	now func() time.Time

	// groups holds the stream keys whose consumer group is known to exist,
	// so Kick creates a group once per queue, not once per batch.
	groups sync.Map
	// known holds the queue names recorded in the queues set (inspect.go),
	// so each is recorded once per process.
	known sync.Map
	// insp caches the inspector's queue counts.
	insp inspectCache

	mu        sync.Mutex
	closed    bool
	listeners map[closer]struct{}
	consumers int
	// listened counts this broker's open listeners per queue: their own
	// movers move that queue's delayed messages, the broker's mover skips it.
	listened   map[string]int
	listenedBy map[closer][]string
	mover      *delayedMover // nil with move_delayed = false or in pubsub mode
	moverOnce  sync.Once     // starts mover at the first Kick or Listen
}

type closer interface{ Close() error }

func newBroker(_ context.Context, cfg sdk.Config) (*broker, error) {
	conn, opts, err := decodeBrokerConfig(cfg)
	if err != nil {
		return nil, err
	}
	client, addr, log, err := connect(conn, cfg)
	if err != nil {
		return nil, err
	}
	b := &broker{client: client, addr: addr, opts: opts, log: log, now: time.Now,
		listeners: map[closer]struct{}{}, listened: map[string]int{}, listenedBy: map[closer][]string{}}
	if opts.moveDelayed && opts.mode != modePubSub {
		b.mover = newDelayedMover(b)
	}
	return b, nil
}

// startMover starts the broker-wide delayed mover once, at the first kick
// or listen: a process that loaded the broker and uses it moves delayed
// messages, and the clock (b.now) is settled by then.
func (b *broker) startMover() {
	if b.mover != nil {
		b.moverOnce.Do(b.mover.start)
	}
}

// listening reports whether one of this broker's listeners moves queue's
// delayed messages.
func (b *broker) listening(queue string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.listened[queue] > 0
}

// capabilitiesFor lists what a mode implements.
func capabilitiesFor(mode string) []string {
	switch mode {
	case modeList:
		return []string{sdk.CapDelay, sdk.CapDeadLetter, sdk.CapRouting, sdk.CapInspect, sdk.CapCancel, sdk.CapDedup}
	case modePubSub:
		return []string{sdk.CapBroadcast}
	default:
		// Delivery ids are stream entry ids (queue-prefixed when listening
		// to several queues): any process of the group can settle them.
		return []string{sdk.CapAckable, sdk.CapLease, sdk.CapDelay, sdk.CapDeadLetter, sdk.CapRouting, sdk.CapStableIDs, sdk.CapInspect, sdk.CapCancel, sdk.CapDedup}
	}
}

// queueSpec is one queue as a listener sees it.
type queueSpec struct {
	name   string // as the user wrote it; the queue field of dead letters
	key    string // stream or list key (hash-tagged in cluster mode)
	group  string
	weight int
	// cursor is where the next XAUTOCLAIM continues (stream mode).
	cursor string
	// idxCursor is where the next sweep of the task-id index continues
	// (stream mode; see sweepIndex).
	idxCursor string
}

func (b *broker) queueName(q string) string {
	if q == "" {
		return b.opts.queue
	}
	return q
}

// streamKey is the key of a queue's stream or list. With defaults it is the
// queue name itself, byte-identical to taskiq-redis. In cluster mode the name
// is wrapped in a hash tag so the queue, its delayed set and its dead-letter
// stream live on one slot (scripts touch them together); a name that already
// has a tag is left alone.
func (b *broker) streamKey(queue string) string {
	queue = b.queueName(queue)
	if b.opts.clusterHashes && !strings.Contains(queue, "{") {
		return "{" + queue + "}"
	}
	return queue
}

func (b *broker) delayedKey(queue string) string { return b.streamKey(queue) + ":delayed" }

func (b *broker) deadKey(queue string) string {
	if b.opts.deadLetter != "" {
		return b.opts.deadLetter
	}
	return b.streamKey(queue) + ":dead"
}

// groupName is the consumer group of a queue's stream: one name for all
// queues ("taskiq" unless consumer_group says otherwise).
func (b *broker) groupName(string) string { return b.opts.group }

func (b *broker) spec(q sdk.Queue) *queueSpec {
	w := q.Weight
	if w <= 0 {
		w = 1
	}
	return &queueSpec{name: b.queueName(q.Name), key: b.streamKey(q.Name), group: b.groupName(q.Name),
		weight: w, cursor: "0-0", idxCursor: "0"}
}

// delayedMember encodes a delayed message; see moveDueScript.
func delayedMember(attempt int, body []byte) string {
	_, m := delayedMemberTag(attempt, body)
	return m
}

// delayedMemberTag is delayedMember with its tag (the member's ref).
func delayedMemberTag(attempt int, body []byte) (tag, member string) {
	tag = newTag()
	return tag, tag + "|" + strconv.Itoa(attempt) + "|" + string(body)
}

// newTag is the 16 hex digits that start a delayed member.
func newTag() string { return fmt.Sprintf("%016x", rand.Uint64()) }

func unixMilli(t time.Time) float64 { return float64(t.UnixMilli()) }

// Kick sends the whole batch in one pipeline: one round trip per batch.
func (b *broker) Kick(ctx context.Context, msgs []sdk.Outgoing) error {
	b.startMover()
	if b.isClosed() {
		return fmt.Errorf("redis kick: %w", sdk.ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	if b.opts.mode == modePubSub {
		for _, m := range msgs {
			if m.Delay > 0 {
				return fmt.Errorf("redis kick: task %s asks for a delay, but mode \"pubsub\" cannot delay messages; use mode \"stream\" or drop the delay label: %w", m.TaskID, sdk.ErrUnsupported)
			}
		}
	}
	pipe := b.client.Pipeline()
	groupCmds := map[string]*redis.StatusCmd{}
	recorded := b.recordQueues(ctx, pipe, msgs)
	now := b.now()
	// In stream mode, consecutive plain messages of one queue go in one
	// kickScript call, which adds and indexes them (taskindex.go); a
	// message of another kind or queue ends the run, so the order of a
	// queue's messages is the order of the batch.
	var (
		calls   []*pipedScript
		run     []any
		runKey  string
		runName string
	)
	flush := func() {
		if len(run) > 1 {
			calls = append(calls, queueScript(ctx, pipe, kickScript, []string{runKey, b.idsKey(runName)}, run))
		}
		run = nil
	}
	for _, m := range msgs {
		key := b.streamKey(m.Queue)
		if b.opts.mode == modeStream {
			if _, ok := b.groups.Load(key); !ok && groupCmds[key] == nil {
				groupCmds[key] = pipe.XGroupCreateMkStream(ctx, key, b.groupName(m.Queue), "$")
			}
		}
		dedup := m.DedupWindow > 0 && b.opts.mode != modePubSub && !b.opts.noDedup
		if run != nil && (dedup || m.Delay > 0 || key != runKey) {
			flush()
		}
		switch {
		case dedup:
			b.kickOnce(ctx, pipe, m, now)
		case m.Delay > 0:
			tag, member := delayedMemberTag(0, m.Body)
			due := now.Add(m.Delay).UnixMilli()
			pipe.ZAdd(ctx, b.delayedKey(m.Queue), redis.Z{Score: float64(due), Member: member})
			if tid := bodyTaskID(m.Body); tid != "" && b.opts.mode == modeStream {
				pipe.HSet(ctx, b.idsKey(m.Queue), tid, idxDelayed(due, tag))
			}
		case b.opts.mode == modeStream:
			if run == nil {
				run, runKey, runName = []any{b.opts.maxlen}, key, m.Queue
			}
			run = append(run, bodyTaskID(m.Body), m.Body)
		case b.opts.mode == modeList:
			pipe.LPush(ctx, key, m.Body)
		default:
			pipe.Publish(ctx, b.queueName(m.Queue), m.Body)
		}
	}
	flush()
	var delayed []string
	for _, m := range msgs {
		if m.Delay > 0 && !slices.Contains(delayed, m.Queue) {
			delayed = append(delayed, m.Queue)
		}
	}
	b.registerDelayed(ctx, pipe, delayed...)
	cmds, err := pipe.Exec(ctx)
	if err := pipelineErr(cmds, err, func(e error) bool { return isBusyGroup(e) || isNoScript(e) }); err != nil {
		return wrapErr("kick", b.addr, err)
	}
	if err := retryNoScript(ctx, b.client, calls); err != nil {
		return wrapErr("kick", b.addr, err)
	}
	if err := scriptsErr(calls); err != nil {
		return wrapErr("kick", b.addr, err)
	}
	for key := range groupCmds {
		b.groups.Store(key, struct{}{})
	}
	for _, q := range recorded {
		b.known.Store(q, struct{}{})
	}
	return nil
}

// recordQueues adds the queues of msgs not recorded yet by this process to
// the queues set the inspector lists (one SADD per new queue, none on a
// process's later kicks), and returns them.
func (b *broker) recordQueues(ctx context.Context, pipe redis.Pipeliner, msgs []sdk.Outgoing) []string {
	var fresh []string
	for _, m := range msgs {
		q := b.queueName(m.Queue)
		if _, ok := b.known.Load(q); ok || slices.Contains(fresh, q) {
			continue
		}
		fresh = append(fresh, q)
	}
	if len(fresh) > 0 && b.opts.mode != modePubSub {
		pipe.SAdd(ctx, b.queuesKey(), toAny(fresh)...)
	}
	return fresh
}

// pipelineErr is the outcome of a pipeline: the first command error that
// ignore does not accept, or, when Exec failed while no command carries an
// error, Exec's own error. The latter happens when the batch was never sent:
// go-redis reports a connection it could not set up (WRONGPASS from the
// HELLO/AUTH handshake, for one) only through Exec, leaving every command
// without an error, so looking at the commands alone would take a batch that
// never reached Redis for a success.
func pipelineErr(cmds []redis.Cmder, err error, ignore func(error) bool) error {
	if err == nil {
		return nil
	}
	carried := false
	for _, c := range cmds {
		if e := c.Err(); e != nil {
			carried = true
			if ignore == nil || !ignore(e) {
				return e
			}
		}
	}
	if !carried {
		return err
	}
	return nil
}

// addDeadLetter queues the dead-letter XADD on pipe. The caller logs the
// dead letter once the write succeeded.
func (b *broker) addDeadLetter(ctx context.Context, pipe redis.Pipeliner, queue, originalID string, body []byte, reason string, attempt int) *redis.StringCmd {
	return pipe.XAdd(ctx, &redis.XAddArgs{Stream: b.deadKey(queue), Values: []any{
		"data", body, "reason", reason, "queue", queue, "attempt", attempt,
		"failed_at", b.now().UnixMilli(), "original_id", originalID,
	}})
}

// sameSlot reports whether keys a and b may be used in one script or
// transaction: always outside a cluster, else when they hash to one slot.
func (b *broker) sameSlot(a, c string) bool {
	return !b.opts.clusterHashes || keySlot(a) == keySlot(c)
}

// keySlot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash
// tag (the part between the first "{" and the next "}", when not empty) or
// of the whole key, modulo 16384.
func keySlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

func isBusyGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") }
func isNoGroup(err error) bool   { return err != nil && strings.HasPrefix(err.Error(), "NOGROUP") }

// Listen opens a stream of deliveries for the mode. It fails (with
// sdk.ErrUnavailable) when Redis cannot be reached at that moment; once
// open, a stream rides out outages shorter than unavailable_after by
// retrying, and ends with an error wrapping sdk.ErrUnavailable after that.
func (b *broker) Listen(ctx context.Context, req sdk.ListenRequest) (sdk.Stream, error) {
	b.startMover()
	if b.isClosed() {
		return nil, fmt.Errorf("redis listen: %w", sdk.ErrClosed)
	}
	qs := req.Queues
	if len(qs) == 0 {
		qs = []sdk.Queue{{}}
	}
	var specs []*queueSpec
	seen := map[string]bool{}
	for _, q := range qs {
		s := b.spec(q)
		if seen[s.key] {
			continue
		}
		seen[s.key] = true
		specs = append(specs, s)
	}
	var (
		l   closer
		err error
	)
	switch b.opts.mode {
	case modeStream:
		lease := req.Lease
		if lease <= 0 {
			lease = b.opts.lease
		}
		l, err = newStreamListener(ctx, b, specs, req.StrictPriority, lease)
	case modeList:
		// Nothing has to be created, but a Listen that succeeds without
		// Redis would count as a broker that works: the host would take the
		// reopened stream for the end of an outage and stay ready.
		if err := b.client.Ping(ctx).Err(); err != nil {
			return nil, wrapErr("listen (PING)", b.addr, err)
		}
		l, err = newListListener(b, specs, req.StrictPriority), nil
	default:
		l, err = newPubSubListener(ctx, b, specs)
	}
	if err != nil {
		return nil, err
	}
	// Registered so that the delayed nacks of these queues are moved by the
	// other processes too once this one is gone.
	if b.opts.mode != modePubSub {
		pipe := b.client.Pipeline()
		for _, sp := range specs {
			b.registerDelayed(ctx, pipe, sp.name)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.log.Debug("could not register the listened queues for delayed moves", "error", err)
		}
	}
	if b.opts.mode != modePubSub {
		names := make([]string, len(specs))
		for i, s := range specs {
			names[i] = s.name
		}
		if err := b.client.SAdd(ctx, b.queuesKey(), toAny(names)...).Err(); err != nil {
			b.log.Debug("recording the listened queues for the inspector failed", "error", err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		_ = l.Close()
		return nil, fmt.Errorf("redis listen: %w", sdk.ErrClosed)
	}
	b.listeners[l] = struct{}{}
	if b.opts.mode != modePubSub {
		names := make([]string, len(specs))
		for i, sp := range specs {
			names[i] = sp.name
			b.listened[sp.name]++
		}
		b.listenedBy[l] = names
	}
	return l.(sdk.Stream), nil
}

// nextConsumerName gives every stream of this broker its own consumer name
// (the first one is consumer_name itself), so two streams of one process
// never take entries from each other through the ownership check of a lease
// extension.
func (b *broker) nextConsumerName() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.consumers++
	if b.consumers == 1 {
		return b.opts.consumer
	}
	return fmt.Sprintf("%s-%d", b.opts.consumer, b.consumers)
}

func (b *broker) forget(l closer) {
	b.mu.Lock()
	delete(b.listeners, l)
	for _, q := range b.listenedBy[l] {
		b.listened[q]--
	}
	delete(b.listenedBy, l)
	b.mu.Unlock()
}

func (b *broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close closes every open stream, then the connection pool. Kicks are
// synchronous, so nothing is left to flush.
func (b *broker) Close(context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	ls := make([]closer, 0, len(b.listeners))
	for l := range b.listeners {
		ls = append(ls, l)
	}
	b.mu.Unlock()
	if b.mover != nil {
		b.mover.shutdown()
	}
	b.stopBackfilling()
	// In parallel: each may wait up to one block interval for its read.
	errs := make([]error, len(ls)+1)
	var wg sync.WaitGroup
	for i, l := range ls {
		wg.Go(func() { errs[i] = l.Close() })
	}
	wg.Wait()
	errs[len(ls)] = b.client.Close()
	return errors.Join(errs...)
}

// moveDue moves the delayed messages of queue due at now to its stream
// (mode "stream") or list ("list"); it returns how many it moved and when
// the next one is due (zero time when none is left).
func (b *broker) moveDue(ctx context.Context, target, queue string, now time.Time) (int, time.Time, error) {
	const limit = 500
	total := 0
	for {
		res, err := moveDueScript.Run(ctx, b.client, []string{b.delayedKey(queue), b.streamKey(queue), b.idsKey(queue)},
			now.UnixMilli(), limit, target, b.opts.maxlen).Slice()
		if err != nil {
			return total, time.Time{}, err
		}
		n, _ := res[0].(int64)
		total += int(n)
		if n >= limit {
			continue
		}
		var next time.Time
		if s, _ := res[1].(string); s != "" {
			if ms, err := strconv.ParseFloat(s, 64); err == nil {
				next = time.UnixMilli(int64(ms))
			}
		}
		return total, next, nil
	}
}

// Interface guards
var (
	_ sdk.Broker = (*broker)(nil)
)
