package core

import (
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// The types an application meets in tasks, middlewares and results. They are
// aliases of the types plugins share (package sdk and its wire format), so a
// value passes between the two without conversion and an application never
// needs to import either package.
type (
	// Message is one task message: task_id, task_name, labels, args and
	// kwargs, in Python taskiq's format (docs/wire.md).
	Message = wire.Message
	// TaskResult is the stored result of one task run: its return value or
	// error, execution time and labels. Middlewares' post hooks receive it.
	TaskResult = wire.Result
	// TaskError is a task's error as it is stored and crosses processes:
	// the exception type and message of taskiq's layout. Result.Value
	// returns one for a task that failed in another process.
	TaskError = wire.Error
	// Progress is a progress report of a running task (Context.SetProgress,
	// AsyncTask.GetProgress).
	Progress = wire.Progress
	// Queue names a queue a worker listens to, with its weight
	// (WorkerOptions.Queues).
	Queue = sdk.Queue
	// Delivery is how a broker handed a message to the worker: its id,
	// attempt and lease deadline (Context.Delivery).
	Delivery = sdk.Delivery
	// Broker is a broker implementation, for WithBroker and Context.Broker.
	Broker = sdk.Broker
	// ResultBackend is a result backend implementation, for
	// WithResultBackend.
	ResultBackend = sdk.ResultBackend
)

// Middlewares: a middleware is any value implementing one or more of these
// hook interfaces (taskiq's middleware hooks). Pre hooks run in the order
// the middlewares were added, post hooks and on_error in reverse.
type (
	// Middleware is a value implementing at least one hook interface.
	Middleware = sdk.Middleware
	// PreSender runs on the client before a message is sent (pre_send).
	PreSender = sdk.PreSender
	// PostSender runs on the client after a message is sent (post_send).
	PostSender = sdk.PostSender
	// PreExecuter runs on the worker before a task runs (pre_execute).
	PreExecuter = sdk.PreExecuter
	// ErrorHandler runs on the worker when a task failed (on_error).
	ErrorHandler = sdk.ErrorHandler
	// PostExecuter runs on the worker after a task ran (post_execute).
	PostExecuter = sdk.PostExecuter
	// PostSaver runs on the worker after the result is saved (post_save).
	PostSaver = sdk.PostSaver
)

// ErrUnavailable is wrapped by errors of a plugin process that is not
// running or cannot be reached (a task module that exited under its task,
// say); such calls may work again once the process is restarted.
var ErrUnavailable = sdk.ErrUnavailable

// ErrNoResult, returned from an on_error hook, skips saving the task's
// result (a retry middleware returns it for an attempt it will retry).
var ErrNoResult = sdk.ErrNoResult

// DeadLetter, returned from an on_error hook, saves the result and then
// moves the message to the broker's dead-letter store with reason.
func DeadLetter(reason string) error { return sdk.DeadLetter(reason) }

// Labels with a meaning to the host and the brokers (set them with
// WithLabels or Kicker.WithLabels).
const (
	LabelDelay        = wire.LabelDelay        // seconds before the message is delivered
	LabelTimeout      = wire.LabelTimeout      // seconds a run may take
	LabelQueueName    = wire.LabelQueueName    // the queue the message goes to
	LabelPriority     = wire.LabelPriority     // delivery priority, where the broker has priorities
	LabelAckType      = wire.LabelAckType      // when_received, when_executed, when_saved or manual
	LabelRetryOnError = wire.LabelRetryOnError // retry middlewares: retry this task on error
	LabelMaxRetries   = wire.LabelMaxRetries   // retry middlewares: at most this many retries
	LabelRequeue      = wire.LabelRequeue      // how often Context.Requeue sent the message again
)

// Progress states, as taskiq writes them (custom strings are allowed too).
const (
	StateStarted = wire.StateStarted
	StateFailure = wire.StateFailure
	StateSuccess = wire.StateSuccess
	StateRetry   = wire.StateRetry
)
