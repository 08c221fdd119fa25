package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq/internal/backoff"

	"github.com/taskiq-go/taskiq/internal/config"

	"github.com/taskiq-go/taskiq/core/internal/telemetry"
	"github.com/taskiq-go/taskiq/internal/coalesce"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// AckType says when a worker acknowledges a message.
type AckType string

// Ack types, as in taskiq (the ack_type of taskiq.hcl's worker block).
const (
	// AckWhenReceived acks before the task runs (at-most-once).
	AckWhenReceived AckType = config.AckWhenReceived
	// AckWhenExecuted acks after the task ran, before its result is saved.
	AckWhenExecuted AckType = config.AckWhenExecuted
	// AckWhenSaved acks after the result is saved (the default): a crash at
	// any point before that redelivers the message.
	AckWhenSaved AckType = config.AckWhenSaved
	// AckManual leaves acking to the task (Context.Ack). A task that returns
	// without acking has its message returned to the queue.
	AckManual AckType = config.AckManual
)

func (t AckType) valid() bool { return config.ValidAckType(string(t)) }

// WorkerOptions configures RunWorker. Zero values take the defaults.
type WorkerOptions struct {
	// Broker to listen to; "" is the default broker.
	Broker string
	// Queues to consume, with weights; empty is the broker's default queue.
	Queues         []Queue
	StrictPriority bool
	// MaxAsyncTasks bounds concurrently running tasks (default 100).
	MaxAsyncTasks int
	// MaxPrefetch bounds the deliveries a worker holds at once: waiting to
	// run, running, and finishing (result being saved, ack being sent). It
	// is at least MaxAsyncTasks (default twice MaxAsyncTasks), so a task's
	// slot is free for the next one while its result is still being saved.
	MaxPrefetch int
	// AckType is when messages are acknowledged (default when_saved); a
	// message's ack_type label overrides it.
	AckType AckType
	// ShutdownTimeout bounds the drain of running tasks once ctx ends
	// (default 30s); after it, tasks' contexts are cancelled and their
	// messages are left to the broker to redeliver.
	ShutdownTimeout time.Duration
	// Lease is the visibility lease asked of the broker; the worker extends
	// it while a task runs. Zero is the broker's default.
	Lease time.Duration
	// Ready, when set, is called once the first delivery stream is open.
	Ready func()
	// Readiness, when set, is told each change of whether the worker can
	// take tasks: true once a delivery stream is open; false, with why, once
	// the broker has been failing (its stream broken, and reopening it
	// failing) for UnreadyAfter; true again when a stream opens. A broker
	// that is unreachable but keeps its stream open and retries inside the
	// plugin is not seen (see docs/worker.md, readiness).
	Readiness func(ready bool, reason string)
	// UnreadyAfter is how long the broker may fail before Readiness is told
	// false (default DefaultUnreadyAfter).
	UnreadyAfter time.Duration
}

// or fills o's zero fields from d (the worker block of taskiq.hcl).
func (o WorkerOptions) or(d WorkerOptions) WorkerOptions {
	if o.Broker == "" {
		o.Broker = d.Broker
	}
	if len(o.Queues) == 0 {
		o.Queues, o.StrictPriority = d.Queues, d.StrictPriority
	}
	if o.MaxAsyncTasks == 0 {
		o.MaxAsyncTasks = d.MaxAsyncTasks
	}
	if o.MaxPrefetch == 0 {
		o.MaxPrefetch = d.MaxPrefetch
	}
	if o.AckType == "" {
		o.AckType = d.AckType
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = d.ShutdownTimeout
	}
	if o.Lease == 0 {
		o.Lease = d.Lease
	}
	return o
}

func (o *WorkerOptions) defaults() error {
	if o.MaxAsyncTasks <= 0 {
		o.MaxAsyncTasks = 100
	}
	if o.MaxPrefetch <= 0 {
		o.MaxPrefetch = 2 * o.MaxAsyncTasks
	}
	o.MaxPrefetch = max(o.MaxPrefetch, o.MaxAsyncTasks)
	if o.AckType == "" {
		o.AckType = AckWhenSaved
	}
	if !o.AckType.valid() {
		return fmt.Errorf("taskiq: unknown ack type %q (want when_received, when_executed, when_saved or manual)", o.AckType)
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.UnreadyAfter <= 0 {
		o.UnreadyAfter = DefaultUnreadyAfter
	}
	return nil
}

type worker struct {
	app    *App
	opts   WorkerOptions
	broker *brokerEntry
	// slots bounds held deliveries (MaxPrefetch); running bounds running
	// tasks (MaxAsyncTasks). Saving a result and acking happen outside a
	// running slot, so their round trips do not idle the task slots.
	slots   chan struct{}
	running chan struct{}
	// jobs feeds a pool of MaxPrefetch long-lived goroutines: a task runs on
	// a warm stack instead of growing a fresh goroutine's every time.
	jobs chan job
	// wg counts deliveries being handled; pool counts the pool's
	// goroutines; calls counts task functions running on a goroutine of
	// their own (a task with a timeout), which may outlive their delivery.
	wg, pool, calls sync.WaitGroup
	// live holds the Context of every task function running, for the log
	// of those still running when the worker gives up on them.
	live sync.Map // *Context -> task name
	// taskCtx is the parent of every task context; it is cancelled when the
	// shutdown timeout passes.
	taskCtx context.Context
	// keep holds settlements across a broken stream, for a broker with
	// sdk.CapStableIDs; nil otherwise.
	keep *keeper

	// unknownSeen holds the unknown task names given back to the queue
	// (leaveUnknown), each logged once.
	unknownSeen sync.Map

	// cancels holds the cancelled task ids and the running tasks' cancel
	// functions (worker_control.go); nil when the broker cannot cancel.
	cancels *cancelRegistry
}

// settlePace spaces a stream's settlement sends under load. A send is a
// write on the delivery stream that returns in microseconds, so without a
// pause nearly every settlement would cross the process boundary alone (1.5
// per message measured at 40k tasks/s); with it they travel in dozens. Only
// a settlement that comes within settlePace of the previous send waits (at
// most about a millisecond, credit returns as late); at a low rate each one
// goes out at once, without a timer wakeup per message.
const settlePace = 500 * time.Microsecond

// stream is one open delivery stream and the deliveries running from it.
type stream struct {
	sdk.Stream
	settler  *coalesce.Coalescer[sdk.Settlement]
	mu       sync.Mutex
	inflight map[string]*Context
	// minLease is the shortest lease seen on the stream; a shorter one wakes
	// the lease extender so it ticks fast enough.
	minLease  time.Duration
	leaseWake chan struct{}
	// opened is when the stream opened; delivered is set (by consume) once
	// it handed out a delivery. Either shows the stream was healthy.
	opened    time.Time
	delivered bool
}

// streamHealthyAfter is how long a stream that delivers nothing must stay
// open to count as healthy, so that its break resets the reconnect backoff.
const streamHealthyAfter = 10 * time.Second

// cancelGrace bounds how long RunWorker waits, once the shutdown timeout
// cancelled the tasks' contexts, for the task functions to return. A
// function that ignores its context cannot be stopped in Go: after
// cancelGrace RunWorker logs those still running and returns without them
// (their messages are not settled, so the broker redelivers them).
const cancelGrace = 5 * time.Second

// RunWorker consumes tasks until ctx ends, then stops fetching, drains
// running tasks within ShutdownTimeout and returns. After ShutdownTimeout
// it cancels the tasks' contexts and returns once every task function has
// returned, or after cancelGrace more, logging the tasks that ignore their
// context and still run (see cancelGrace). Worker startup and
// shutdown events fire around it. A broken stream (for example a broker
// plugin that died) is reopened with backoff; the worker goes on. Fields of
// opts left zero take the App's worker defaults (taskiq.hcl's worker block).
func (a *App) RunWorker(ctx context.Context, opts WorkerOptions) error {
	opts = opts.or(a.settings)
	if err := opts.defaults(); err != nil {
		return err
	}
	e, err := a.broker(opts.Broker)
	if err != nil {
		return err
	}
	if err := a.fire(ctx, EventWorkerStartup); err != nil {
		return err
	}
	taskCtx, cancelTasks := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelTasks()
	// Streams outlive ctx: running tasks must still settle while draining.
	streamCtx, cancelStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStreams()
	w := &worker{app: a, opts: opts, broker: e, taskCtx: taskCtx,
		slots:   make(chan struct{}, opts.MaxPrefetch),
		running: make(chan struct{}, opts.MaxAsyncTasks),
		jobs:    make(chan job, opts.MaxPrefetch)}
	if sdk.Has(e.caps, sdk.CapStableIDs) {
		w.keep = &keeper{}
	}
	if e.canc != nil {
		w.cancels = newCancelRegistry(a.clock)
	}
	w.startPool(&w.pool)

	var streams []*stream
	var retired []*leaseExtender
	bo := newBackoff(a.clock, 50*time.Millisecond, 5*time.Second)
	ready := opts.Ready
	var parts sync.WaitGroup // the goroutines of the worker's parts but its tasks
	defer parts.Wait()
	// Heartbeats and the cancellation watch end before parts.Wait returns.
	controlCtx, stopControl := context.WithCancel(streamCtx)
	defer stopControl()
	w.startControl(controlCtx, &parts)
	health := newReadiness(a.clock, opts.UnreadyAfter, e.name, opts.Readiness)
	health.start(&parts)
	defer health.shutdown()
	for ctx.Err() == nil {
		s, err := w.listen(ctx, streamCtx)
		if err != nil {
			if ctx.Err() == nil {
				health.down(err)
				w.retryWait(ctx, bo, "cannot open delivery stream", err)
			}
			continue
		}
		streams = append(streams, s)
		if w.keep != nil {
			w.keep.adopt(w, s, &parts)
		}
		health.up()
		if ready != nil {
			ready()
			ready = nil
		}
		// The extender of a stream ends with it, before the next one opens;
		// with stable ids it goes on while deliveries of the stream run, its
		// extensions sent on the next stream (see keeper).
		var extending sync.WaitGroup
		ext := w.leaseExtender(s)
		ext.start(&extending)
		err = w.consume(ctx, s)
		if w.keep != nil && ctx.Err() == nil {
			w.keep.broke(s)
			retired = append(retired, ext)
			ext.retire(&parts, &extending)
		} else {
			ext.shutdown()
			extending.Wait()
		}
		if ctx.Err() != nil {
			break
		}
		if s.delivered || a.clock.Now().Sub(s.opened) >= streamHealthyAfter {
			// The broker worked until this break: reopen quickly, as after a
			// first failure, instead of where an earlier outage left off.
			bo.Reset()
		}
		health.down(err)
		w.retryWait(ctx, bo, "delivery stream broke", err)
	}

	a.logger.Debug("worker stopping: draining running tasks", "timeout", opts.ShutdownTimeout)
	w.shutdownPool() // consume has returned: no job comes any more
	ended := w.tasksEnded()
	select {
	case <-ended:
	case <-a.clock.After(opts.ShutdownTimeout):
		a.logger.Warn("shutdown timeout passed with tasks still running; cancelling them, the broker redelivers their messages", "timeout", opts.ShutdownTimeout)
		cancelTasks()
		select {
		case <-ended:
		case <-a.clock.After(cancelGrace):
			w.logStillRunning()
		}
	}
	for _, ext := range retired {
		ext.shutdown()
	}
	for _, s := range streams {
		s.settler.Close()
		_ = s.Close()
	}
	if w.keep != nil {
		w.keep.dropped(w)
	}
	return a.fire(context.WithoutCancel(ctx), EventWorkerShutdown)
}

// Lifecycle. Every long-running part of the worker (the task pool, each
// stream's lease extender, readiness) starts and stops the same way:
// start(wg) launches its goroutines, each counted on wg; shutdown() tells
// them to end, and the owner's wg.Wait() returns once they have. The
// Coalescers (internal/coalesce), whose goroutine starts on demand, have
// Close, which does both; App.Close closes the App's.

// startPool starts the pool of goroutines that handle deliveries.
func (w *worker) startPool(wg *sync.WaitGroup) {
	for i := 0; i < w.opts.MaxPrefetch; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range w.jobs {
				w.handle(j.s, j.d)
			}
		}()
	}
}

// shutdownPool ends the pool once the jobs handed to it are handled.
func (w *worker) shutdownPool() { close(w.jobs) }

// tasksEnded is closed once every delivery is handled, every task function
// has returned and the pool has ended. With a task that ignores its
// context it may never close (see cancelGrace).
func (w *worker) tasksEnded() <-chan struct{} {
	ended := make(chan struct{})
	go func() {
		w.wg.Wait()
		w.calls.Wait()
		w.pool.Wait()
		close(ended)
	}()
	return ended
}

// logStillRunning logs the task functions still running when RunWorker
// gives up on them.
func (w *worker) logStillRunning() {
	w.live.Range(func(k, v any) bool {
		tc := k.(*Context)
		tc.Logger().Error("task still running after its context was cancelled: it ignores its context and cannot be stopped; "+
			"the worker returns without it and the broker redelivers its message",
			"grace", cancelGrace)
		return true
	})
}

// listen opens a stream bound to streamCtx; ctx only bounds the opening.
func (w *worker) listen(ctx, streamCtx context.Context) (*stream, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	st, err := w.broker.broker.Listen(streamCtx, sdk.ListenRequest{
		Queues:         w.opts.Queues,
		StrictPriority: w.opts.StrictPriority,
		Lease:          w.opts.Lease,
		Prefetch:       w.opts.MaxPrefetch,
	})
	if err != nil {
		return nil, err
	}
	s := &stream{Stream: st, inflight: map[string]*Context{}, leaseWake: make(chan struct{}, 1), opened: w.app.clock.Now()}
	s.settler = coalesce.NewPaced(256, settlePace, st.Settle)
	return s, nil
}

// consume receives deliveries while slots are free and starts a goroutine per
// delivery. It returns when ctx ends or the stream fails.
func (w *worker) consume(ctx context.Context, s *stream) error {
	for {
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		n := 1
		for n < 256 {
			select {
			case w.slots <- struct{}{}:
				n++
				continue
			default:
			}
			break
		}
		ds, err := s.Recv(ctx, n)
		for i := len(ds); i < n; i++ {
			<-w.slots
		}
		if err != nil {
			return err
		}
		s.delivered = s.delivered || len(ds) > 0
		for _, d := range ds {
			w.wg.Add(1)
			w.jobs <- job{s, d}
		}
	}
}

type job struct {
	s *stream
	d sdk.Delivery
}

func (w *worker) settle(s *stream, tc *Context, st sdk.Settlement) error {
	err := w.send(s, st)
	if err != nil {
		tc.Logger().Error("settling a delivery failed; the broker will redeliver it", "delivery", st.DeliveryID, "kind", st.Kind, "error", err)
	}
	return err
}

func (w *worker) deadLetter(tc *Context, reason string) {
	if w.leftToNewOwner(tc, "dead letter") {
		return
	}
	d := tc.Delivery
	tc.Logger().Error("message moved to dead letter", "broker", w.broker.name, "delivery", d.ID, "reason", reason)
	if !sdk.Has(w.broker.caps, sdk.CapDeadLetter) {
		tc.Logger().Error("the broker has no dead-letter store; the message is dropped after this log line", "body", string(d.Body))
	}
	_ = tc.settle(sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleDeadLetter, Reason: reason})
}

// leftToNewOwner reports (and logs) that a run whose lease was lost does not
// return its message to the queue (nack, requeue) or dead-letter it: the
// broker may have handed the message to another worker, which now decides
// its fate; sending it back as well would make a second copy. The run's ack
// is still sent: the task ran to its end, and acking a message someone else
// holds cannot duplicate it. planSettle makes the same decision up front;
// this check covers a lease lost while the settlement was on its way.
func (w *worker) leftToNewOwner(tc *Context, what string) bool {
	tc.mu.Lock()
	lost := tc.leaseLost
	tc.mu.Unlock()
	if lost {
		w.logLeftToNewOwner(tc, what)
	}
	return lost
}

func (w *worker) logLeftToNewOwner(tc *Context, what string) {
	tc.Logger().Warn("lease lost: this run does not send its "+what+"; the worker now holding the message settles it",
		"broker", w.broker.name, "delivery", tc.Delivery.ID)
}

// handle is the path of one delivery through the worker: it finds what
// happened to the delivery (a runOutcome) and settles it as planSettle
// decides.
func (w *worker) handle(s *stream, d sdk.Delivery) {
	defer func() { <-w.slots; w.wg.Done() }()
	w.app.tel.Held(1)
	defer w.app.tel.Held(-1)
	tc := &Context{BrokerName: w.broker.name, Delivery: d, app: w.app}
	w.setLease(s, tc)
	if running := s.track(tc); running != nil {
		// The broker handed out a message this worker is running (its lease
		// looked expired to the broker, say after the process was frozen).
		// Running the copy would run the task twice at once, and settling it
		// would settle the running one, whose delivery id it shares.
		w.app.logger.Warn("the broker delivered again a message this worker is running; dropping the copy",
			"broker", w.broker.name, "delivery", d.ID, "attempt", d.Attempt, "running_attempt", running.Delivery.Attempt)
		return
	}
	defer s.untrack(tc)
	tc.settle = func(st sdk.Settlement) error {
		if st.Kind != sdk.SettleAck && st.Kind != sdk.SettleExtend && w.leftToNewOwner(tc, st.Kind.String()) {
			return nil
		}
		return w.settle(s, tc, st)
	}
	def, reason := w.decode(tc)
	if def == nil {
		if w.leaveUnknown(tc) {
			return
		}
		w.app.tel.Invalid()
		w.saveDeadLetterResult(tc, reason)
		w.apply(w.taskCtx, tc, w.plan(tc, runInvalid, reason, w.opts.AckType).final)
		return
	}
	runCtx, run := w.app.tel.StartRun(w.taskCtx, tc.Message, d.Attempt)
	tc.run = run
	var ended telemetry.Outcome
	defer func() { run.End(ended) }()
	ackType := w.opts.AckType
	if l, ok := tc.Message.LabelString(wire.LabelAckType); ok && AckType(l).valid() {
		ackType = AckType(l)
	}
	w.apply(w.taskCtx, tc, w.plan(tc, runStarting, "", ackType).final)

	ctx := withTaskContext(runCtx, tc)
	o, reason, res := w.outcome(ctx, def, tc)
	ended = outcomeFlags(o)
	p := w.plan(tc, o, reason, ackType)
	w.apply(ctx, tc, p.early)
	if p.save {
		begin := w.app.clock.Now()
		err := w.saveWithRetry(ctx, tc, res)
		run.Saved(w.app.clock.Now().Sub(begin))
		if err != nil {
			// Never ack a message whose result was lost: let it run again.
			tc.Logger().Error("saving the result failed; the message is returned to the queue", "error", err)
			ended |= telemetry.Unsaved
			w.apply(ctx, tc, w.plan(tc, runUnsaved, "", ackType).final)
			return
		}
	}
	w.apply(ctx, tc, p.final)
	if p.save {
		if err := w.app.chain.postSave(ctx, tc.Message, res); err != nil {
			tc.Logger().Error("post_save middleware failed", "error", err)
		}
	}
}

// decode reads tc's message and finds its task; for a message that cannot
// run it returns a nil task and why.
func (w *worker) decode(tc *Context) (*taskDef, string) {
	d := tc.Delivery
	if len(d.Body) > w.app.maxMessageSize {
		return nil, fmt.Sprintf("message of %d bytes is over max_message_size (%d)", len(d.Body), w.app.maxMessageSize)
	}
	msg, err := wire.DecodeMessage(d.Body)
	if err != nil {
		return nil, "unparseable message: " + err.Error()
	}
	tc.Message = msg
	def := w.app.task(msg.TaskName)
	if def == nil {
		return nil, fmt.Sprintf("unknown task name %q: no task of that name is registered on this worker", msg.TaskName)
	}
	return def, ""
}

// outcome runs the task in a running slot, with the on_error and
// post_execute middlewares, and says what happened: the outcome, a
// dead-letter reason, and the result to save.
func (w *worker) outcome(ctx context.Context, def *taskDef, tc *Context) (runOutcome, string, *wire.Result) {
	msg := tc.Message
	select {
	case w.running <- struct{}{}:
	case <-w.taskCtx.Done():
		return runShutdown, "", nil // not started before the shutdown timeout: left to be redelivered
	}
	tc.run.Started()
	res, taskErr := w.execute(ctx, def, tc)
	<-w.running
	tc.run.Executed(time.Duration(res.ExecutionTime*float64(time.Second)), taskErr)
	if w.taskCtx.Err() != nil {
		// Cut off by the shutdown timeout: its outcome does not count. The
		// message stays unsettled and the broker redelivers it.
		tc.Logger().Warn("task cancelled by shutdown; its message is left to be redelivered")
		return runShutdown, "", res
	}
	tc.mu.Lock()
	control := tc.outcome
	tc.mu.Unlock()
	if control != outcomeNone {
		w.ignoredReturn(tc, control, res, taskErr)
		if control == outcomeReject {
			return runReject, "", res
		}
		return runRequeue, "", res
	}

	var noResult bool
	var deadLetter string
	var argErr *ArgumentError
	if errors.As(taskErr, &argErr) {
		deadLetter = argErr.Error()
	}
	// A cancelled task is not retried: on_error (retry middlewares) is
	// skipped for it.
	if taskErr != nil && !errors.Is(taskErr, ErrCancelled) {
		nr, dl, herr := w.app.chain.onError(ctx, msg, res, taskErr)
		noResult = nr
		if dl != "" {
			deadLetter = dl
		}
		if herr != nil {
			tc.Logger().Error("on_error middleware failed", "error", herr)
		}
	}
	// A task cancelled before it started ran no pre_execute hook, so it
	// runs no post_execute hook either: middlewares pair the two (a limiter
	// that takes a slot in one gives it back in the other).
	var cancelled *CancelledError
	if !errors.As(taskErr, &cancelled) || cancelled.Running {
		if err := w.app.chain.postExecute(ctx, msg, res); err != nil {
			tc.Logger().Error("post_execute middleware failed", "error", err)
		}
	}
	switch {
	case deadLetter != "" && noResult:
		return runDeadLetterNoResult, deadLetter, res
	case deadLetter != "":
		return runDeadLetter, deadLetter, res
	case noResult:
		return runNoResult, "", res
	case taskErr != nil:
		return runFailed, "", res
	}
	return runOK, "", res
}

// ignoredReturn logs what a task returned besides calling Requeue or
// Reject: the call decides, the return value does not count.
func (w *worker) ignoredReturn(tc *Context, control outcome, res *wire.Result, taskErr error) {
	call := "Requeue"
	if control == outcomeReject {
		call = "Reject"
	}
	switch {
	case errors.Is(taskErr, errSettledByTask):
	case taskErr != nil:
		tc.Logger().Warn("task called "+call+" and returned an error; the error is ignored", "error", taskErr)
	case res != nil && len(res.ReturnValue) > 0 && string(res.ReturnValue) != "null":
		tc.Logger().Debug("task called " + call + " and returned a value; the value is ignored")
	}
}

// execute runs pre_execute middlewares and the task, with its timeout and
// dependencies, and returns the result to store and the task's error.
func (w *worker) execute(ctx context.Context, def *taskDef, tc *Context) (*wire.Result, error) {
	start := w.app.clock.Now()
	var ret json.RawMessage
	// A cancelled task does not start: not even its pre_execute hooks run.
	err := w.cancelledBeforeStart(tc, def)
	if err == nil {
		if err = w.app.chain.preExecute(ctx, tc.Message); err != nil {
			err = fmt.Errorf("pre_execute middleware: %w", err)
		}
	}
	if err == nil {
		timeout := def.timeout
		if t, ok := tc.Message.LabelFloat(wire.LabelTimeout); ok && t > 0 {
			timeout = time.Duration(t * float64(time.Second))
		}
		ret, err = w.run(ctx, def, tc, timeout)
	}
	labels := tc.Message.Labels
	if labels == nil {
		labels = map[string]any{} // the wire carries an object, as taskiq writes it
	}
	res := &wire.Result{
		ExecutionTime: w.app.clock.Now().Sub(start).Seconds(),
		Labels:        labels,
		ReturnValue:   ret,
	}
	if err != nil {
		res.IsErr = true
		res.ReturnValue = nil
		res.Error = wire.FromError(err)
	}
	return res, err
}

// TimeoutError is a task's error when it ran past its timeout.
type TimeoutError struct{ Timeout time.Duration }

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("task exceeded its timeout of %v", e.Timeout)
}

// ErrorType names the error on the wire as taskiq does.
func (e *TimeoutError) ErrorType() string { return "TaskiqResultTimeoutError" }

// PanicError is a task's error when it panicked.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprintf("task panicked: %v", e.Value) }

// ErrorType names the error on the wire.
func (e *PanicError) ErrorType() string { return "Panic" }

func (w *worker) runTask(ctx context.Context, def *taskDef, tc *Context, timeout time.Duration) (json.RawMessage, error) {
	call := func(ctx context.Context) (ret json.RawMessage, err error) {
		w.live.Store(tc, def.name)
		defer w.live.Delete(tc)
		defer func() {
			if p := recover(); p != nil {
				err = &PanicError{Value: p, Stack: string(debug.Stack())}
				tc.Logger().Error("task panicked", "panic", p)
			}
			tc.deps.close()
		}()
		return def.call(ctx, tc.Message)
	}
	if timeout <= 0 {
		return call(ctx)
	}
	ctx, cancel := withTimeout(ctx, w.app.clock, timeout)
	defer cancel()
	type outcome struct {
		ret json.RawMessage
		err error
	}
	done := make(chan outcome, 1)
	w.calls.Add(1)
	go func() {
		defer w.calls.Done()
		r, err := call(ctx)
		done <- outcome{r, err}
	}()
	select {
	case o := <-done:
		if errors.Is(o.err, context.DeadlineExceeded) && ctx.Err() != nil {
			return nil, &TimeoutError{Timeout: timeout}
		}
		return o.ret, o.err
	case <-ctx.Done():
		// The function ignores its context; it keeps running, but its result
		// no longer counts.
		return nil, &TimeoutError{Timeout: timeout}
	}
}

// credentialsRetry is how long a worker waits before it tries again a
// broker that refused its credentials: the refusal lasts until someone
// changes the configuration or the server's users, so quick retries would
// only fill the log.
const credentialsRetry = time.Minute

// retryWait logs why the delivery stream is down and waits before the next
// try: the reconnect backoff, or credentialsRetry when the broker refused
// the plugin's credentials.
func (w *worker) retryWait(ctx context.Context, bo *backoff.Backoff, what string, err error) {
	if errors.Is(err, sdk.ErrUnauthenticated) {
		w.app.logger.Error(what+": the broker refused its credentials; fix them in taskiq.hcl (then restart, or SIGHUP taskiq worker); retrying in "+credentialsRetry.String(),
			"broker", w.broker.name, "error", err)
		select {
		case <-ctx.Done():
		case <-w.app.clock.After(credentialsRetry):
		}
		return
	}
	w.app.logger.Error(what+"; retrying", "broker", w.broker.name, "error", err)
	bo.Wait(ctx)
}

// saveRetryFor bounds how long a worker retries saving a finished task's
// result (a backend restarting, say) before returning the message to the
// queue, which runs the task again. The lease is extended meanwhile.
const saveRetryFor = 10 * time.Second

// saveWithRetry saves a result, retrying with backoff for saveRetryFor: the
// task has run, and running it again costs more than waiting for the backend.
func (w *worker) saveWithRetry(ctx context.Context, tc *Context, res *wire.Result) error {
	deadline := w.app.clock.Now().Add(saveRetryFor)
	b := newBackoff(w.app.clock, 100*time.Millisecond, 2*time.Second)
	for {
		err := w.app.saveResult(ctx, tc.Message.TaskID, res)
		if err == nil || w.app.clock.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		tc.Logger().Warn("saving a result failed; retrying", "error", err)
		b.Wait(ctx)
	}
}

func (a *App) saveResult(ctx context.Context, taskID string, res *wire.Result) error {
	body, err := wire.EncodeResult(res)
	if err != nil {
		return err
	}
	if len(body) > a.maxMessageSize {
		body, _ = wire.EncodeResult(&wire.Result{
			IsErr: true, ExecutionTime: res.ExecutionTime, Labels: res.Labels,
			Error: wire.FromError(fmt.Errorf("result of %d bytes is over max_message_size (%d): %w", len(body), a.maxMessageSize, sdk.ErrMessageTooLarge)),
		})
	}
	return a.resultWriter.Do(ctx, sdk.StoredResult{TaskID: taskID, Body: body})
}

// setLease records the lease the broker gave d: what is left of it on
// arrival, which is never longer than the broker's lease. A delivery that
// arrives with its lease already gone (it waited in a buffer while the
// process was frozen) takes the lease the worker asked for, or else the
// shortest lease seen on the stream, so the extender can still renew it.
func (w *worker) setLease(s *stream, tc *Context) {
	d := tc.Delivery
	if d.LeaseDeadline.IsZero() {
		return
	}
	tc.leaseDeadline = d.LeaseDeadline
	if g, ok := s.Stream.(sdk.LeaseGranter); ok {
		if granted := g.GrantedLease(); granted > 0 {
			// The broker renews every extension by this lease, whatever it
			// is asked: the extender times its extensions by it.
			tc.leaseLen = granted
			return
		}
	}
	tc.leaseLen = d.LeaseDeadline.Sub(w.app.clock.Now())
	if tc.leaseLen <= 0 {
		tc.leaseLen = w.opts.Lease
	}
	if tc.leaseLen <= 0 {
		s.mu.Lock()
		tc.leaseLen = s.minLease
		s.mu.Unlock()
	}
}

// track adds tc to the stream's deliveries in flight. If a delivery with the
// same id is already in flight, it returns that one and tracks nothing.
func (s *stream) track(tc *Context) (running *Context) {
	s.mu.Lock()
	if running := s.inflight[tc.Delivery.ID]; running != nil {
		s.mu.Unlock()
		return running
	}
	s.inflight[tc.Delivery.ID] = tc
	shorter := tc.leaseLen > 0 && (s.minLease == 0 || tc.leaseLen < s.minLease)
	if shorter {
		s.minLease = tc.leaseLen
	}
	s.mu.Unlock()
	if shorter {
		s.wakeExtender()
	}
	return nil
}

func (s *stream) wakeExtender() {
	select {
	case s.leaseWake <- struct{}{}:
	default:
	}
}

// idle reports whether no delivery of s is in flight.
func (s *stream) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight) == 0
}

func (s *stream) untrack(tc *Context) {
	s.mu.Lock()
	if s.inflight[tc.Delivery.ID] == tc {
		delete(s.inflight, tc.Delivery.ID)
	}
	s.mu.Unlock()
}

// leaseExtender keeps the leases of running deliveries alive. Each delivery
// keeps the lease length the broker gave it (see setLease); once less than
// half of it is left, it is extended by that length. All extensions due at
// one tick go in one batch. The tick follows the shortest lease in flight, so
// a broker's short lease is never outrun.
//
// A lease found already expired (the process was frozen, or starved of CPU,
// past the deadline) is logged with how late it is and extended at once, on
// its own. If the broker does not confirm that extension, the lease is lost:
// the broker may have given the message to another worker. The run goes on
// and settles only by ack (see leftToNewOwner).
func (w *worker) leaseExtender(s *stream) *leaseExtender {
	return &leaseExtender{w: w, s: s, done: make(chan struct{})}
}

// leaseExtender is the goroutine that extends the leases of one stream.
type leaseExtender struct {
	w    *worker
	s    *stream
	done chan struct{}
	stop sync.Once
}

// start launches the extender, on a broker that has leases.
func (e *leaseExtender) start(wg *sync.WaitGroup) {
	if !sdk.Has(e.w.broker.caps, sdk.CapLease) {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := time.Second
		for {
			select {
			case <-e.done:
				return
			case <-e.s.leaseWake:
			case <-e.w.app.clock.After(next):
			}
			next = e.w.extendDue(e.s)
		}
	}()
}

func (e *leaseExtender) shutdown() { e.stop.Do(func() { close(e.done) }) }

// retire lets the extender of a broken stream go on until no delivery of
// the stream is in flight (or shutdown); its goroutine moves from ext, the
// stream's wait group, to wg, the worker's.
func (e *leaseExtender) retire(wg, ext *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-e.done:
			case <-e.w.app.clock.After(50 * time.Millisecond):
				if !e.s.idle() {
					continue
				}
				e.shutdown()
			}
			ext.Wait()
			return
		}
	}()
}

// extendDue extends the leases due on s and returns when to look again.
func (w *worker) extendDue(s *stream) time.Duration {
	now := w.app.clock.Now()
	next := time.Second
	var due, overdue []*Context
	s.mu.Lock()
	if s.minLease > 0 {
		next = min(next, s.minLease/4)
	}
	for _, tc := range s.inflight {
		tc.mu.Lock()
		if !tc.settled && !tc.leaseLost && !tc.leaseDeadline.IsZero() {
			switch left := tc.leaseDeadline.Sub(now); {
			case left < 0:
				overdue = append(overdue, tc)
			case left < tc.leaseLen/2:
				due = append(due, tc)
			}
		}
		tc.mu.Unlock()
	}
	s.mu.Unlock()
	if len(due) > 0 {
		ext := make([]sdk.Settlement, len(due))
		for i, tc := range due {
			ext[i] = sdk.Settlement{DeliveryID: tc.Delivery.ID, Kind: sdk.SettleExtend, Delay: tc.leaseLen}
		}
		if err := w.send(s, ext...); err != nil {
			w.app.logger.Warn("extending leases failed", "count", len(ext), "error", err)
		} else {
			for _, tc := range due {
				tc.renewed(now)
			}
		}
	}
	// One at a time, so that a refusal names its delivery.
	for _, tc := range overdue {
		w.extendOverdue(s, tc, now)
	}
	return max(next, 5*time.Millisecond)
}

func (w *worker) extendOverdue(s *stream, tc *Context, now time.Time) {
	id := tc.Delivery.ID
	tc.mu.Lock()
	late := now.Sub(tc.leaseDeadline)
	tc.mu.Unlock()
	tc.Logger().Warn("lease expired before the worker extended it (was the process frozen or starved of CPU?); extending it now",
		"broker", w.broker.name, "delivery", id, "overdue", late.Round(time.Millisecond))
	err := w.send(s, sdk.Settlement{DeliveryID: id, Kind: sdk.SettleExtend, Delay: tc.leaseLen})
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.settled {
		return // it finished meanwhile: a refusal was about a settled delivery
	}
	if err != nil {
		tc.leaseLost = true
		tc.Logger().Warn("lease lost: the broker did not extend the expired lease and may have given the message to another worker; "+
			"this run goes on, saves its result and acks, but will not nack, requeue or dead-letter the message",
			"broker", w.broker.name, "delivery", id, "overdue", late.Round(time.Millisecond), "error", err)
		return
	}
	tc.renewedLocked(now)
}

// renewed records a granted extension.
func (c *Context) renewed(now time.Time) {
	c.mu.Lock()
	c.renewedLocked(now)
	c.mu.Unlock()
}

func (c *Context) renewedLocked(now time.Time) {
	d := c.leaseLen
	if d <= 0 {
		// A lease of unknown length was renewed by the broker's default;
		// looking again in a second is the best the worker can do.
		d = time.Second
	}
	c.leaseDeadline = now.Add(d)
}

// newBackoff is internal/backoff's capped exponential wait on the worker's
// clock.
func newBackoff(clk clock, min, max time.Duration) *backoff.Backoff {
	return backoff.New(min, max).WithAfter(clk.After)
}
