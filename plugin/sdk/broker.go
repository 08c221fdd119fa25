package sdk

import (
	"context"
	"errors"
	"time"
)

// Broker moves messages from kickers to workers.
//
// Kick and Listen may be called concurrently. Close drains: it returns once
// every pending kick is durable (or failed) and every stream is closed.
type Broker interface {
	// Kick enqueues a batch. It returns only when every message of the batch
	// is accepted by the broker, or an error.
	Kick(ctx context.Context, msgs []Outgoing) error
	// Listen opens a stream of deliveries for one worker.
	Listen(ctx context.Context, req ListenRequest) (Stream, error)
	// Close releases the broker's resources.
	Close(ctx context.Context) error
}

// Outgoing is one message to enqueue. Body is the encoded wire message; a
// broker stores it as is. The routing fields are lifted from the message's
// labels by the host, so a broker never has to parse Body.
type Outgoing struct {
	TaskID   string
	TaskName string
	Body     []byte
	// Queue is the target queue; empty means the broker's default queue.
	Queue string
	// Delay postpones delivery (capability "delay").
	Delay time.Duration
	// Priority orders deliveries, higher first (capability "priority").
	Priority int
}

// Queue names a queue to listen to, with a relative weight (capability
// "routing"). An empty name is the broker's default queue.
type Queue struct {
	Name   string
	Weight int
}

// ListenRequest opens a delivery stream.
type ListenRequest struct {
	// Queues to consume; empty means the default queue.
	Queues []Queue
	// StrictPriority consumes the queues in order instead of by weight.
	StrictPriority bool
	// Lease is the visibility lease the worker asks for; zero means the
	// broker's default (capability "lease").
	Lease time.Duration
	// Prefetch bounds the deliveries handed out but not yet settled (the
	// credit window); zero means the SDK's default.
	Prefetch int
}

// Delivery is one message handed to a worker. It stays the worker's until it
// is settled or its lease expires.
type Delivery struct {
	// ID identifies the delivery within its stream; settlements name it.
	ID    string
	Body  []byte
	Queue string
	// Attempt counts deliveries of this message, starting at 1.
	Attempt int
	// LeaseDeadline is when the broker may hand the message to another worker
	// unless the lease is extended; zero when the broker has no leases.
	LeaseDeadline time.Time
}

// Stream is one worker's view of a broker. Recv and Settle may be called from
// different goroutines.
type Stream interface {
	// Recv blocks until at least one delivery is available, the stream is
	// closed (ErrClosed) or ctx is done, and returns at most max deliveries.
	Recv(ctx context.Context, max int) ([]Delivery, error)
	// Settle applies a batch of settlements.
	Settle(ctx context.Context, s []Settlement) error
	// Close ends the stream; unsettled deliveries are redelivered later.
	Close() error
}

// LeaseGranter is implemented by a Stream whose broker grants every
// delivery and every extension one lease, whatever an extension asks for
// (a per-consumer ack timeout, as in NATS JetStream, RabbitMQ's consumer
// timeout or an SQS queue's visibility timeout). The host then times its
// extensions by that lease instead of by what it asked for. A stream that
// cannot tell does not implement it (or returns 0).
type LeaseGranter interface {
	GrantedLease() time.Duration
}

// SettleKind is what happens to a delivery.
type SettleKind int

// Settlement kinds.
const (
	// SettleAck removes the message for good.
	SettleAck SettleKind = iota + 1
	// SettleNack returns the message to its queue, after Delay when non-zero.
	SettleNack
	// SettleExtend pushes the lease deadline Delay into the future.
	SettleExtend
	// SettleDeadLetter moves the message to the dead-letter store with Reason
	// (capability "dead_letter"); a broker without one logs it at error level
	// with its body and drops it.
	SettleDeadLetter
)

func (k SettleKind) String() string {
	switch k {
	case SettleAck:
		return "ack"
	case SettleNack:
		return "nack"
	case SettleExtend:
		return "extend"
	case SettleDeadLetter:
		return "dead_letter"
	}
	return "unknown"
}

// Settlement settles (or extends) one delivery.
type Settlement struct {
	DeliveryID string
	Kind       SettleKind
	Delay      time.Duration
	Reason     string
}

// Broker capabilities a plugin may declare.
const (
	CapDelay      = "delay"
	CapPriority   = "priority"
	CapLease      = "lease"
	CapDeadLetter = "dead_letter"
	CapRouting    = "routing"
	// CapAckable means unacked deliveries survive a worker crash.
	CapAckable = "ackable"
	// CapBroadcast means every listener receives every message.
	CapBroadcast = "broadcast"
)

// Sentinel errors shared by plugins and the host.
var (
	// ErrClosed is returned by a closed stream or broker.
	ErrClosed = errors.New("closed")
	// ErrUnsupported is returned for an optional operation the plugin does not implement.
	ErrUnsupported = errors.New("not supported by this plugin")
	// ErrMessageTooLarge is returned for a message over the configured maximum size.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrUnavailable means the backing service cannot be reached; the call may be retried.
	ErrUnavailable = errors.New("service unavailable")
	// ErrUnauthenticated means the backing service refused the plugin's
	// credentials or permissions. Unlike ErrUnavailable it is permanent: the
	// same call fails the same way until the configuration changes, so the
	// host does not retry it quickly.
	ErrUnauthenticated = errors.New("credentials refused")
)
