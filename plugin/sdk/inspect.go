package sdk

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Capabilities of the inspection and control roles.
const (
	// CapInspect means the configured role implements Inspector: queues,
	// messages by state, one task, bulk actions, pause/resume and workers.
	CapInspect = "inspect"
	// CapCancel means the configured role implements Canceller: durable
	// cancellation tombstones and a broadcast of them to every worker.
	CapCancel = "cancel"
)

// ErrTaskNotFound is returned by Inspector.Task when no message of the task
// is held by the broker (it finished, was deleted, or never existed).
// It wraps ErrNotFound.
var ErrTaskNotFound = fmt.Errorf("task not found in the broker: %w", ErrNotFound)

// MessageState is where a message is in its broker.
type MessageState string

// Message states.
const (
	StateQueued  MessageState = "queued"  // waiting for a worker
	StateDelayed MessageState = "delayed" // waiting for its delay to pass
	StateRunning MessageState = "running" // delivered, leased, not settled
	StateDead    MessageState = "dead"    // in the dead-letter store
)

// MessageStates lists every state, in the order a message goes through them.
var MessageStates = []MessageState{StateQueued, StateDelayed, StateRunning, StateDead}

// Valid reports whether s is one of MessageStates.
func (s MessageState) Valid() bool {
	for _, x := range MessageStates {
		if x == s {
			return true
		}
	}
	return false
}

// Inspector is the optional inspection role of a broker (capability
// "inspect"). It must never cost a full scan of a queue per call for the
// counts: Queues returns counts cached and refreshed on an interval.
// Messages and bulk actions that filter scan at most a bounded number of
// messages per call and continue from a cursor.
type Inspector interface {
	// Queues lists the queues the broker knows, with their counts.
	Queues(ctx context.Context) ([]QueueStats, error)
	// Messages lists one page of the messages of a queue in one state that
	// match the query's filter.
	Messages(ctx context.Context, q MessageQuery) (MessagePage, error)
	// Task finds the message of one task; ErrTaskNotFound when the broker
	// holds none. With a Ref (from a MessageInfo) the lookup is direct.
	Task(ctx context.Context, ref TaskRef) (MessageInfo, error)
	// Act applies a bulk action to messages named by Refs or matching a
	// filter; with DryRun it only counts them.
	Act(ctx context.Context, a Action) (ActionResult, error)
	// SetPaused pauses or resumes a queue: listeners stop fetching from a
	// paused queue (and log it) until it is resumed. Kicks still enqueue.
	SetPaused(ctx context.Context, queue string, paused bool) error
	// Heartbeat records that a worker is alive; it is forgotten once ttl
	// passes without another heartbeat.
	Heartbeat(ctx context.Context, w WorkerInfo, ttl time.Duration) error
	// Workers lists the workers whose heartbeat has not expired.
	Workers(ctx context.Context) ([]WorkerInfo, error)
}

// Canceller is the optional cancellation role of a broker (capability
// "cancel"). Cancel writes a durable tombstone for the task (it outlives
// worker restarts, for the broker's tombstone lifetime) and broadcasts it;
// WatchCancels tells a worker about every tombstone: the ones that exist
// when it starts, then each new one as it is written.
type Canceller interface {
	Cancel(ctx context.Context, taskID string) error
	// WatchCancels calls fn with batches of cancelled task ids until ctx
	// ends (then it returns nil) or the watch fails. Its first call carries
	// every live tombstone, and is made even when there is none (an empty
	// batch), so a worker knows them before it takes a message. fn is never
	// called concurrently.
	WatchCancels(ctx context.Context, fn func(taskIDs []string)) error
}

// QueueStats are a queue's counts, as of RefreshedAt.
type QueueStats struct {
	Name    string
	Queued  int64
	Delayed int64
	Running int64
	Dead    int64
	// OldestAge is the age of the oldest queued message at RefreshedAt;
	// zero when the queue is empty or the broker cannot tell.
	OldestAge time.Duration
	// Consumers counts the listeners (consumers) of the queue.
	Consumers int
	// Delivered counts the messages handed to workers since the queue
	// began, when the broker counts them (0: unknown). Two snapshots give
	// the throughput.
	Delivered   int64
	Paused      bool
	RefreshedAt time.Time
}

// MessageFilter selects messages; the zero value selects every message.
// Every field set must match.
type MessageFilter struct {
	TaskName string
	TaskID   string
	// Labels must all be present with these values (compared as strings).
	Labels map[string]string
	// Text must occur in the message's args or kwargs (as JSON) or in its
	// dead-letter reason.
	Text string
}

// IsZero reports whether f selects every message.
func (f MessageFilter) IsZero() bool {
	return f.TaskName == "" && f.TaskID == "" && len(f.Labels) == 0 && f.Text == ""
}

// MessageQuery asks for one page of messages.
type MessageQuery struct {
	Queue  string // "" is the broker's default queue
	State  MessageState
	Filter MessageFilter
	// Cursor continues a previous page (MessagePage.Next); "" starts over.
	Cursor string
	// Limit bounds the page; 0 means DefaultPageSize.
	Limit int
}

// DefaultPageSize is the page size of a MessageQuery without a Limit;
// MaxPageSize is the largest page an inspector returns.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// PageLimit is the page size to use for a requested limit.
func PageLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return n
}

// MessagePage is one page of messages.
type MessagePage struct {
	Messages []MessageInfo
	// Next continues the listing; "" when there is nothing more.
	Next string
}

// MessageInfo is one message as an inspector sees it.
type MessageInfo struct {
	// Ref locates the message in its broker (a stream entry id, say); pass
	// it back in a TaskRef or an Action.
	Ref      string
	TaskID   string
	TaskName string
	Queue    string
	State    MessageState
	// Body is the wire message, as stored.
	Body    []byte
	Attempt int
	// EnqueuedAt is when the message was queued; zero when unknown.
	EnqueuedAt time.Time
	// DueAt is when a delayed message becomes ready.
	DueAt time.Time
	// LeaseHolder is the consumer holding a running message, and
	// LeaseDeadline when its lease runs out (zero when unknown).
	LeaseHolder   string
	LeaseDeadline time.Time
	// Reason and FailedAt describe a dead letter.
	Reason   string
	FailedAt time.Time
}

// TaskRef names a task for Inspector.Task: by TaskID alone (searched), or
// with the Queue, State and Ref a listing returned (direct).
type TaskRef struct {
	TaskID string
	Queue  string
	State  MessageState
	Ref    string
}

// ActionKind is a bulk action.
type ActionKind string

// Bulk actions.
const (
	// ActionRequeue puts messages back in their queue (or in Target) as
	// new, ready messages: the re-kick of a dead letter.
	ActionRequeue ActionKind = "requeue"
	// ActionDelete removes messages for good.
	ActionDelete ActionKind = "delete"
	// ActionMove moves messages to the queue named by Target.
	ActionMove ActionKind = "move"
)

// Action is a bulk action on the messages of one queue in one state, named
// by Refs or, when Refs is empty, matching Filter (the zero filter matches
// every message). Running messages cannot be acted on.
type Action struct {
	Kind   ActionKind
	Queue  string
	State  MessageState
	Refs   []string
	Filter MessageFilter
	// Target is the destination queue of ActionMove (and of ActionRequeue
	// when not empty).
	Target string
	// DryRun counts the messages the action would touch and changes nothing.
	DryRun bool
}

// Validate refuses an action no inspector can do: an unknown kind or
// state, a move without a target, a running message (cancel its task
// instead) or a requeue of queued messages to their own queue.
func (a Action) Validate() error {
	switch a.Kind {
	case ActionRequeue, ActionDelete:
	case ActionMove:
		if a.Target == "" {
			return fmt.Errorf("inspect: %s needs a target queue", a.Kind)
		}
	default:
		return fmt.Errorf("inspect: unknown action %q (want requeue, delete or move)", a.Kind)
	}
	switch a.State {
	case StateDelayed, StateDead:
	case StateQueued:
		if a.Kind == ActionRequeue && a.Target == "" {
			return fmt.Errorf("inspect: queued messages are already in their queue; move them to a target queue instead")
		}
	case StateRunning:
		return fmt.Errorf("inspect: running messages cannot be acted on (%s); cancel their tasks instead", a.Kind)
	default:
		return fmt.Errorf("inspect: unknown message state %q (want one of %v)", a.State, MessageStates)
	}
	return nil
}

// ActionResult says what an Action touched.
type ActionResult struct {
	// Matched counts the messages selected; Done those acted on (0 for a
	// dry run).
	Matched int
	Done    int
}

// WorkerInfo is one worker process, from its heartbeats.
type WorkerInfo struct {
	ID      string
	Host    string
	PID     int
	Queues  []string
	Running int
	Started time.Time
	// LastSeen is when the last heartbeat arrived (set by the broker).
	LastSeen time.Time
}

// MatchBody reports whether a wire message body, with its dead-letter reason,
// matches f. It is the filter every inspector applies, so plugins agree on
// what a filter means. The zero filter matches without decoding the body.
func (f MessageFilter) MatchBody(body []byte, reason string) bool {
	if f.IsZero() {
		return true
	}
	if f.rejectsBytes(body, reason) {
		return false
	}
	m, err := wire.DecodeMessage(body)
	if err != nil {
		// An unparseable message matches only a text filter on its bytes or
		// reason: it is what one searches dead letters for.
		return f.TaskName == "" && f.TaskID == "" && len(f.Labels) == 0 &&
			(strings.Contains(string(body), f.Text) || strings.Contains(reason, f.Text))
	}
	if f.TaskName != "" && m.TaskName != f.TaskName {
		return false
	}
	if f.TaskID != "" && m.TaskID != f.TaskID {
		return false
	}
	for k, v := range f.Labels {
		if got, ok := m.LabelString(k); !ok || got != v {
			return false
		}
	}
	if f.Text == "" || strings.Contains(reason, f.Text) {
		return true
	}
	for _, a := range m.Args {
		if strings.Contains(string(a), f.Text) {
			return true
		}
	}
	for k, v := range m.Kwargs {
		if strings.Contains(k, f.Text) || strings.Contains(string(v), f.Text) {
			return true
		}
	}
	return false
}

// rejectsBytes is the cheap part of MatchBody: a task name, task id or text
// that a JSON encoder writes as it is (printable ASCII without quotes,
// backslashes or slashes) must occur in the body's bytes, so most
// messages are rejected without being decoded.
func (f MessageFilter) rejectsBytes(body []byte, reason string) bool {
	absent := func(s string) bool { return s != "" && plainJSON(s) && !bytes.Contains(body, []byte(s)) }
	if absent(f.TaskName) || absent(f.TaskID) {
		return true
	}
	return absent(f.Text) && !strings.Contains(reason, f.Text)
}

func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '/' {
			return false
		}
	}
	return true
}
