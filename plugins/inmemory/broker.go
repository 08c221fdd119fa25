package inmemory

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

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Defaults of the broker's config.
const (
	// DefaultQueue is the queue used for an empty queue name.
	DefaultQueue = "taskiq"
	// DefaultLease is the visibility lease of a delivery when neither the
	// listener nor the config asks for another.
	DefaultLease = 30 * time.Second
)

// ReasonMaxAttempts is the dead-letter reason of a message that was
// delivered max_attempts times without being acked.
const ReasonMaxAttempts = "exceeded max_attempts"

// ErrUnknownDelivery is wrapped by the error Stream.Settle returns for a
// delivery ID the stream does not hold. The settlement is ignored; the other
// settlements of the batch still apply. If it happens for acks of slow tasks,
// their lease expired and the message was redelivered: extend the lease
// while the task runs, or listen with a longer lease.
var ErrUnknownDelivery = errors.New("unknown delivery: it was already settled, its lease expired, or another stream holds it")

// BrokerOptions configures a Broker. The zero value is usable.
type BrokerOptions struct {
	// Queue is the default queue, used when a kick or a listener names none.
	// Empty means DefaultQueue.
	Queue string
	// Lease is the visibility lease given to deliveries whose listener asks
	// for none. Zero or negative means DefaultLease.
	Lease time.Duration
	// MaxAttempts bounds deliveries of one message: a message delivered that
	// many times that comes back (nack, lease expiry, stream close) goes to
	// the dead-letter store with ReasonMaxAttempts instead of being
	// redelivered. Zero or negative means unlimited.
	MaxAttempts int
	// Logger receives a warning for every dead-lettered message. Nil means
	// no logging.
	Logger hclog.Logger
}

// DeadLetter is a message that was taken out of circulation, with why.
type DeadLetter struct {
	TaskID   string
	TaskName string
	// Body is the original message, byte for byte.
	Body []byte
	// Reason is the worker's reason, or ReasonMaxAttempts.
	Reason string
	Queue  string
	// Attempt is how many times the message had been delivered.
	Attempt    int
	EnqueuedAt time.Time
	FailedAt   time.Time
}

// deadLetter is a stored dead letter with the ref the inspector names it by.
type deadLetter struct {
	DeadLetter
	ref uint64
}

// Broker is an in-memory sdk.Broker. It is safe for concurrent use.
//
// All state sits behind one mutex: every operation handles a whole batch per
// lock acquisition, and a delivery can move between queues, streams and the
// two time heaps, which per-queue locks would have to coordinate anyway.
type Broker struct {
	opts BrokerOptions
	log  hclog.Logger
	// now is the clock for delays and leases; tests inject a fake one.
	now func() time.Time
	// idPrefix makes delivery IDs of different broker instances (say, before
	// and after a plugin restart) distinct, so a stale ID never settles a
	// message it was not given for.
	idPrefix string

	mu sync.Mutex
	// queues are created on first use by a kick or a listener, never removed.
	queues  map[string]*queue
	delayed *timeHeap
	leases  *timeHeap
	streams map[*stream]struct{}
	dead    []deadLetter
	// toLog holds dead letters to log once the mutex is released.
	toLog []DeadLetter
	// seq orders delayed messages due at the same instant.
	seq uint64
	// lastDelivery numbers deliveries.
	lastDelivery uint64
	// lastRef numbers kicked messages for the inspector.
	lastRef uint64
	// tombstones are the cancelled task ids, until they expire; watchers
	// are told about new ones (cancel.go).
	tombstones map[string]time.Time
	watchers   map[*cancelWatcher]struct{}
	// workers are the heartbeats received, by worker id.
	workers map[string]workerBeat
	// dedup holds, per task id kicked with a dedup window, when the window
	// ends; dedupPrune is the size at which expired entries are swept.
	dedup      map[string]time.Time
	dedupPrune int
	closed     bool

	// timerAt is when the timekeeper goroutine wakes next; zero when it
	// sleeps until signalled. It may be earlier than needed (after acks),
	// never later.
	timerAt time.Time
	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}
}

// Interface guards.
var _ sdk.Broker = (*Broker)(nil)

// NewBroker returns a running broker; Close stops it.
func NewBroker(opts BrokerOptions) *Broker {
	return newBroker(opts, time.Now)
}

func newBroker(opts BrokerOptions, now func() time.Time) *Broker {
	if opts.Queue == "" {
		opts.Queue = DefaultQueue
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.MaxAttempts < 0 {
		opts.MaxAttempts = 0
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	b := &Broker{
		opts:       opts,
		log:        log,
		now:        now,
		idPrefix:   fmt.Sprintf("%08x-", rand.Uint32()),
		queues:     make(map[string]*queue),
		delayed:    newDelayHeap(),
		leases:     newLeaseHeap(),
		streams:    make(map[*stream]struct{}),
		tombstones: map[string]time.Time{},
		watchers:   map[*cancelWatcher]struct{}{},
		workers:    map[string]workerBeat{},
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	go b.runTimekeeper()
	return b
}

// Kick enqueues a batch. The broker keeps msgs[i].Body as is: the caller
// must not modify it afterwards.
func (b *Broker) Kick(ctx context.Context, msgs []sdk.Outgoing) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := b.now()
	// One allocation for the batch: a message keeps the slab alive only until
	// its batch is fully acked, which bounds the waste to one batch.
	slab := make([]message, len(msgs))
	b.mu.Lock()
	defer b.unlock()
	if b.closed {
		return fmt.Errorf("kick: %w", sdk.ErrClosed)
	}
	var last *queue
	for i := range msgs {
		o := &msgs[i]
		if o.DedupWindow > 0 && b.seenLocked(o.TaskID, now, o.DedupWindow) {
			continue
		}
		m := &slab[i]
		*m = message{
			taskID:     o.TaskID,
			taskName:   o.TaskName,
			body:       o.Body,
			queue:      b.queueName(o.Queue),
			priority:   o.Priority,
			enqueuedAt: now,
			heapIndex:  -1,
		}
		b.lastRef++
		m.ref = b.lastRef
		if o.Delay > 0 {
			b.delayLocked(m, now.Add(o.Delay))
			continue
		}
		q := last
		if q == nil || q.name != m.queue {
			if last != nil {
				b.wakeListenersLocked(last)
			}
			q = b.queueLocked(m.queue)
			last = q
		}
		q.push(m)
	}
	if last != nil {
		b.wakeListenersLocked(last)
	}
	return nil
}

// Listen opens a stream over the requested queues. Queues listed twice are
// consumed once, with the first weight given.
func (b *Broker) Listen(ctx context.Context, req sdk.ListenRequest) (sdk.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &stream{
		b:        b,
		lease:    req.Lease,
		strict:   req.StrictPriority,
		inflight: make(map[uint64]*message),
	}
	if s.lease <= 0 {
		s.lease = b.opts.Lease
	}
	queues := req.Queues
	if len(queues) == 0 {
		queues = []sdk.Queue{{Name: b.opts.Queue, Weight: 1}}
	}
	b.mu.Lock()
	defer b.unlock()
	if b.closed {
		return nil, fmt.Errorf("listen: %w", sdk.ErrClosed)
	}
	for _, rq := range queues {
		q := b.queueLocked(b.queueName(rq.Name))
		if slices.ContainsFunc(s.sources, func(src source) bool { return src.q == q }) {
			continue
		}
		w := rq.Weight
		if w <= 0 {
			w = 1
		}
		s.sources = append(s.sources, source{q: q, weight: w})
		q.listeners = append(q.listeners, s)
	}
	b.streams[s] = struct{}{}
	return s, nil
}

// Close stops the broker: pending and future Recv calls of every stream
// return sdk.ErrClosed, and so do Kick, Listen and Settle. Queued messages
// stay inspectable. Close waits for the timekeeper goroutine, or ctx.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		for s := range b.streams {
			s.wakeLocked()
		}
		close(b.done)
	}
	b.unlock()
	select {
	case <-b.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close in-memory broker: %w", ctx.Err())
	}
}

// Len returns how many messages of a queue ("" for the default) are ready
// for delivery: delayed and in-flight messages are not counted.
func (b *Broker) Len(queue string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q, ok := b.queues[b.queueName(queue)]; ok {
		return q.n
	}
	return 0
}

// Delayed returns how many messages wait for their delay (or nack delay) to
// pass, across all queues.
func (b *Broker) Delayed() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.delayed.Len()
}

// InFlight returns how many deliveries are held by streams, unsettled.
func (b *Broker) InFlight() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.leases.Len()
}

// DeadLetters returns a copy of the dead-letter store, oldest first. The
// store is unbounded and lives as long as the broker. Bodies share memory
// with the store: do not modify them.
func (b *Broker) DeadLetters() []DeadLetter {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]DeadLetter, len(b.dead))
	for i, d := range b.dead {
		out[i] = d.DeadLetter
	}
	return out
}

func (b *Broker) queueName(name string) string {
	if name == "" {
		return b.opts.Queue
	}
	return name
}

func (b *Broker) queueLocked(name string) *queue {
	q, ok := b.queues[name]
	if !ok {
		q = &queue{name: name}
		b.queues[name] = q
	}
	return q
}

// wakeListenersLocked wakes every stream of q that waits in Recv. Waking all
// of them, not just as many as messages arrived, keeps the wake-up logic
// free of lost wake-ups when a stream listens to several queues; the cost is
// bounded by the number of streams, which in a plugin process is one per
// worker.
func (b *Broker) wakeListenersLocked(q *queue) {
	for _, s := range q.listeners {
		s.wakeLocked()
	}
}

// delayLocked parks m until due.
func (b *Broker) delayLocked(m *message, due time.Time) {
	b.seq++
	m.due = due
	m.seq = b.seq
	b.delayed.add(m)
	b.scheduleLocked(due)
}

// requeueLocked returns a message that left its stream unacked (nack, lease
// expiry, stream close) to its queue, after delay, or to the dead-letter
// store once it used up max_attempts.
func (b *Broker) requeueLocked(m *message, now time.Time, delay time.Duration) {
	m.owner = nil
	m.deliveryID = 0
	if b.opts.MaxAttempts > 0 && m.attempt >= b.opts.MaxAttempts {
		b.deadLetterLocked(m, ReasonMaxAttempts, now)
		return
	}
	if delay > 0 {
		b.delayLocked(m, now.Add(delay))
		return
	}
	q := b.queueLocked(m.queue)
	q.push(m)
	b.wakeListenersLocked(q)
}

func (b *Broker) deadLetterLocked(m *message, reason string, now time.Time) {
	if reason == "" {
		reason = "dead-lettered without a reason"
	}
	d := DeadLetter{
		TaskID:     m.taskID,
		TaskName:   m.taskName,
		Body:       m.body,
		Reason:     reason,
		Queue:      m.queue,
		Attempt:    m.attempt,
		EnqueuedAt: m.enqueuedAt,
		FailedAt:   now,
	}
	b.dead = append(b.dead, deadLetter{DeadLetter: d, ref: m.ref})
	b.toLog = append(b.toLog, d)
}

// unlock releases the mutex, then logs the dead letters recorded under it,
// so that a burst of dead letters does not hold up the queues while the
// logger writes.
func (b *Broker) unlock() {
	toLog := b.toLog
	b.toLog = nil
	b.mu.Unlock()
	for _, d := range toLog {
		b.log.Warn("message moved to the dead-letter store",
			"task_id", d.TaskID, "task_name", d.TaskName, "queue", d.Queue,
			"attempt", d.Attempt, "reason", d.Reason)
	}
}

func (b *Broker) formatID(n uint64) string {
	buf := make([]byte, 0, len(b.idPrefix)+20)
	buf = append(buf, b.idPrefix...)
	return string(strconv.AppendUint(buf, n, 10))
}

// parseID returns 0 for an ID this broker did not issue.
func (b *Broker) parseID(id string) uint64 {
	rest, ok := strings.CutPrefix(id, b.idPrefix)
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// seenLocked reports whether taskID was kicked within its dedup window, and
// starts a window for it when not (capability "dedup").
func (b *Broker) seenLocked(taskID string, now time.Time, window time.Duration) bool {
	if until, ok := b.dedup[taskID]; ok && now.Before(until) {
		return true
	}
	if b.dedup == nil {
		b.dedup, b.dedupPrune = map[string]time.Time{}, 1024
	}
	if len(b.dedup) >= b.dedupPrune {
		for id, until := range b.dedup {
			if !now.Before(until) {
				delete(b.dedup, id)
			}
		}
		b.dedupPrune = max(1024, 2*len(b.dedup))
	}
	b.dedup[taskID] = now.Add(window)
	return false
}
