package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/taskiq-go/taskiq/internal/coalesce"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Kicker sends one task with per-call settings. Its methods return a changed
// copy, so a Kicker can be kept and reused.
type Kicker[R any] struct {
	task   *Task[R]
	broker string
	labels map[string]any
	taskID string
}

// Kicker starts a kick with the task's defaults.
func (t *Task[R]) Kicker() Kicker[R] { return Kicker[R]{task: t} }

// WithBroker sends through the named broker instead of the default one.
func (k Kicker[R]) WithBroker(name string) Kicker[R] { k.broker = name; return k }

// WithLabels adds labels, overriding the task's.
func (k Kicker[R]) WithLabels(labels map[string]any) Kicker[R] {
	merged := make(map[string]any, len(k.labels)+len(labels))
	for key, v := range k.labels {
		merged[key] = v
	}
	for key, v := range labels {
		merged[key] = v
	}
	k.labels = merged
	return k
}

// WithTaskID sets the task id instead of a random one.
func (k Kicker[R]) WithTaskID(id string) Kicker[R] { k.taskID = id; return k }

// Kiq sends the task with args and returns a handle to its result.
//
// An error wrapping ErrMaybeSent means the broker reported a failure after
// the message left: concurrent Kiq calls are sent to the broker together, in
// one batch, and a batch that fails part way (a connection lost after Redis
// applied some of its commands, an early chunk of a large batch already
// sent) may have enqueued some of its messages, this one included. Its task
// may then run although Kiq failed; a caller that kicks it again may have it
// run twice. Make tasks idempotent, or kick with a task id of your own
// (WithTaskID) and look for its result before kicking again.
func (k Kicker[R]) Kiq(ctx context.Context, args ...any) (*AsyncTask[R], error) {
	d := k.task.def
	encoded, err := d.encodeArgs(args)
	if err != nil {
		return nil, err
	}
	msg := &wire.Message{
		TaskID:   k.taskID,
		TaskName: d.name,
		Labels:   make(map[string]any, len(d.labels)+len(k.labels)),
		Args:     encoded,
	}
	if msg.TaskID == "" {
		msg.TaskID = NewTaskID()
	}
	for key, v := range d.labels {
		msg.Labels[key] = v
	}
	for key, v := range k.labels {
		msg.Labels[key] = v
	}
	app := k.task.app
	if err := app.send(ctx, k.broker, msg); err != nil {
		return nil, err
	}
	return &AsyncTask[R]{TaskID: msg.TaskID, app: app}, nil
}

// send runs the client middlewares around the broker kick.
func (a *App) send(ctx context.Context, broker string, msg *wire.Message) error {
	return a.sendOnce(ctx, broker, 0, msg)
}

// sendOnce is send with a dedup window for the broker (0: none).
func (a *App) sendOnce(ctx context.Context, broker string, dedup time.Duration, msg *wire.Message) (err error) {
	ctx, span := a.tel.StartSend(ctx, msg)
	defer func() { span.End(err) }()
	if err := a.chain.preSend(ctx, msg); err != nil {
		return fmt.Errorf("taskiq: pre_send: %w", err)
	}
	if err := a.kickOnce(ctx, broker, dedup, msg); err != nil {
		return err
	}
	if err := a.chain.postSend(ctx, msg); err != nil {
		a.logger.Warn("post_send middleware failed; the task was sent", "task_id", msg.TaskID, "error", err)
	}
	return nil
}

// kick encodes and sends messages through a broker, without middlewares.
func (a *App) kick(ctx context.Context, broker string, msgs ...*wire.Message) error {
	return a.kickOnce(ctx, broker, 0, msgs...)
}

// kickOnce is kick with a dedup window (sdk.Outgoing.DedupWindow) on every
// message.
func (a *App) kickOnce(ctx context.Context, broker string, dedup time.Duration, msgs ...*wire.Message) error {
	e, err := a.broker(broker)
	if err != nil {
		return err
	}
	out := make([]sdk.Outgoing, len(msgs))
	for i, msg := range msgs {
		a.tel.StampKick(msg)
		if out[i], err = a.outgoing(msg); err != nil {
			return err
		}
		out[i].DedupWindow = dedup
		if e.maxSize > 0 && len(out[i].Body) > e.maxSize {
			return fmt.Errorf("taskiq: task %q: %w: %d bytes, over the limit of broker %q (%d bytes; the host's max_message_size is %d)",
				msg.TaskName, sdk.ErrMessageTooLarge, len(out[i].Body), e.name, e.maxSize, a.maxMessageSize)
		}
	}
	if err := e.kicks.Do(ctx, out...); err != nil {
		// The broker does not say which messages of a failed batch it
		// enqueued, so none of them is known not to be.
		return fmt.Errorf("taskiq: kick through broker %q failed (%w): %w", e.name, ErrMaybeSent, err)
	}
	for _, msg := range msgs {
		a.tel.Kicked(msg)
	}
	return nil
}

// kickBatch is the most messages one kick batch carries, and kickLaneCount how
// many batches a broker has in flight at once. One batch at a time bounded
// brokers whose batch waits on a round trip per batch (JetStream publish
// acks, RabbitMQ confirms): the next batch only started once the last was
// acknowledged. Two overlap that wait.
const (
	kickBatch     = 256
	kickLaneCount = 2
)

// kickLanes spreads a broker's kicks over a few coalescers, each sending
// one batch at a time, so that up to len(lanes) batches are in flight.
//
// A Do joins the lane with the fewest messages queued or in flight: a lone
// caller always takes the first lane (one call, as with one coalescer),
// and under load new kicks gather in the idle lane while the other one's
// batch is out. Each Do still returns the error of the batch that carried
// its messages. Batches of different lanes may reach the broker in either
// order; a caller that waits for one Kiq before the next keeps its own
// order, as concurrent Kiq calls never had one.
type kickLanes struct {
	lanes []*coalesce.Coalescer[sdk.Outgoing]
	load  []atomic.Int64 // messages queued or in flight per lane
}

func newKickLanes(n, max int, flush func(context.Context, []sdk.Outgoing) error) *kickLanes {
	k := &kickLanes{lanes: make([]*coalesce.Coalescer[sdk.Outgoing], n), load: make([]atomic.Int64, n)}
	for i := range k.lanes {
		k.lanes[i] = coalesce.New(max, flush)
	}
	return k
}

// Do sends msgs in the least loaded lane's next batch and returns that
// batch's error (coalesce.Coalescer.Do).
func (k *kickLanes) Do(ctx context.Context, msgs ...sdk.Outgoing) error {
	best := 0
	for i := 1; i < len(k.lanes); i++ {
		if k.load[i].Load() < k.load[best].Load() {
			best = i
		}
	}
	n := int64(len(msgs))
	k.load[best].Add(n)
	defer k.load[best].Add(-n)
	return k.lanes[best].Do(ctx, msgs...)
}

// Close flushes every lane and ends its goroutine.
func (k *kickLanes) Close() {
	for _, l := range k.lanes {
		l.Close()
	}
}

// outgoing encodes a message and lifts its routing labels.
func (a *App) outgoing(msg *wire.Message) (sdk.Outgoing, error) {
	body, err := msg.AppendJSON(nil)
	if err != nil {
		return sdk.Outgoing{}, fmt.Errorf("taskiq: encode task %q: %w", msg.TaskName, err)
	}
	if len(body) > a.maxMessageSize {
		return sdk.Outgoing{}, fmt.Errorf("taskiq: task %q: %w: %d bytes, the limit is %d (max_message_size in taskiq.hcl)",
			msg.TaskName, sdk.ErrMessageTooLarge, len(body), a.maxMessageSize)
	}
	o := sdk.Outgoing{TaskID: msg.TaskID, TaskName: msg.TaskName, Body: body}
	o.Queue, _ = msg.LabelString(wire.LabelQueueName)
	if d, ok := msg.LabelFloat(wire.LabelDelay); ok && d > 0 {
		// A delay past what a Duration holds (~292 years) means "not for a
		// very long time", never "now".
		o.Delay = time.Duration(math.MaxInt64)
		if d < math.MaxInt64/float64(time.Second) {
			o.Delay = time.Duration(d * float64(time.Second))
		}
	}
	if p, ok := msg.LabelInt(wire.LabelPriority); ok {
		o.Priority = int(p)
	}
	return o, nil
}

// NewTaskID returns a random id in taskiq's format: a UUID4 as 32 lowercase
// hex characters.
func NewTaskID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:])
}
