package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// remoteTasks is a task module served by a plugin process: one Execute
// stream, opened on first use and again after it broke, with at most window
// executions outstanding.
type remoteTasks struct {
	c      *Client
	rpc    pluginv1.TaskModuleClient
	window chan struct{}

	mu      sync.Mutex
	gs      *execStream
	cancel  context.CancelFunc
	nextID  uint64
	pending map[uint64]*pendingCall
	closed  bool
}

// execStream is one open Execute stream and the requests queued on it
// (sendQueue: batched, sent by whoever queues while nobody sends).
type execStream struct {
	gs      pluginv1.TaskModule_ExecuteClient
	batch   bool // the module announced CapExecuteBatch
	maxSize int

	out    sendQueue[*pluginv1.ExecuteRequest]
	sendMu sync.Mutex // held while sending; CloseSend must not run alongside
}

// send queues req and sends the queue unless another caller is sending it.
// An error is that of a send that failed (the stream is broken then).
func (s *execStream) send(req *pluginv1.ExecuteRequest) error {
	return s.out.push(req, s.write)
}

// write sends reqs as one stream message per size-bounded batch, or one per
// request to a module that takes no batches.
func (s *execStream) write(reqs []*pluginv1.ExecuteRequest) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if !s.batch || len(reqs) == 1 {
		for _, r := range reqs {
			r.AcceptsBatch = true
			if err := s.gs.Send(r); err != nil {
				return err
			}
		}
		return nil
	}
	for _, b := range chunkBySize(reqs, s.maxSize, requestSize) {
		if err := s.gs.Send(&pluginv1.ExecuteRequest{Batch: b, AcceptsBatch: true}); err != nil {
			return err
		}
	}
	return nil
}

func requestSize(r *pluginv1.ExecuteRequest) int {
	return len(r.Message) + len(r.Broker) + len(r.DeliveryId)
}

func (s *execStream) closeSend() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	_ = s.gs.CloseSend()
}

// pendingCall is one execution waiting for its response. Its window slot is
// released when the module answers (or the stream breaks), even when the
// caller gave up earlier: the window bounds what the module really runs.
type pendingCall struct {
	done chan callOutcome // buffered: the receive loop never blocks
}

// pendingCalls recycles the pendingCall of a call that received its
// answer (one whose caller gave up may still be sent to, and is dropped).
var pendingCalls = sync.Pool{New: func() any { return &pendingCall{done: make(chan callOutcome, 1)} }}

type callOutcome struct {
	resp *pluginv1.ExecuteResponse
	err  error
}

func newRemoteTasks(c *Client, window int) *remoteTasks {
	if window <= 0 {
		window = DefaultTaskWindow
	}
	return &remoteTasks{
		c: c, rpc: pluginv1.NewTaskModuleClient(c.conn),
		window: make(chan struct{}, window), pending: map[uint64]*pendingCall{},
	}
}

// Tasks returns the tasks the module reported when it was configured.
func (t *remoteTasks) Tasks() []TaskInfo {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return append([]TaskInfo(nil), t.c.tasks...)
}

// Execute sends msg to the module and waits for its answer. A TaskCall in
// ctx is sent along and told whether the task acknowledged its message.
// The module's failure comes back as a *wire.Error, which also matches
// ErrBadArguments for arguments that do not fit; ErrRequeue and ErrReject
// come back as themselves.
func (t *remoteTasks) Execute(ctx context.Context, msg *wire.Message) (json.RawMessage, error) {
	call := TaskCallFrom(ctx)
	var body []byte
	if call != nil && len(call.Body) > 0 {
		body = call.Body // unchanged since the broker delivered it
	} else {
		var err error
		if body, err = msg.AppendJSON(nil); err != nil {
			return nil, fmt.Errorf("encode task %q: %w", msg.TaskName, err)
		}
	}
	if len(body) > t.c.maxSize {
		return nil, tooLarge(fmt.Sprintf("message %s (task %s)", msg.TaskID, msg.TaskName), len(body), t.c.maxSize)
	}
	select {
	case t.window <- struct{}{}:
	default: // the window is full: wait for a slot, or for ctx
		select {
		case t.window <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	req := &pluginv1.ExecuteRequest{Message: body}
	if dl, ok := ctx.Deadline(); ok {
		req.DeadlineUnixMs = dl.UnixMilli()
	}
	if call != nil {
		req.Broker, req.DeliveryId, req.Attempt = call.Broker, call.DeliveryID, int32(call.Attempt)
	}
	gs, pc, err := t.register(req)
	if err != nil {
		<-t.window
		return nil, err
	}
	if err := gs.send(req); err != nil {
		// The stream is broken; the receive loop fails every pending call,
		// this one included, with the reason.
		t.c.logger.Debug("sending to the task module failed", "error", err)
	}
	select {
	case out := <-pc.done:
		pendingCalls.Put(pc) // answered: nothing sends to it again
		if out.err != nil {
			return nil, out.err
		}
		if call != nil && out.resp.Acked {
			call.Ack()
		}
		return decodeExecuteResponse(out.resp)
	case <-ctx.Done():
		_ = gs.send(&pluginv1.ExecuteRequest{CallId: req.CallId, Cancel: true})
		return nil, ctx.Err()
	}
}

func decodeExecuteResponse(resp *pluginv1.ExecuteResponse) (json.RawMessage, error) {
	switch resp.Control {
	case controlRequeue:
		return nil, ErrRequeue
	case controlReject:
		return nil, ErrReject
	}
	if len(resp.Error) > 0 {
		var we wire.Error
		if err := json.Unmarshal(resp.Error, &we); err != nil {
			return nil, fmt.Errorf("the task module sent an unreadable error (%v): %s", err, resp.Error)
		}
		if resp.ErrorKind == errorKindArguments {
			return nil, fmt.Errorf("%w: %w", ErrBadArguments, &we)
		}
		return nil, &we
	}
	if len(resp.Result) == 0 {
		return nil, nil
	}
	return json.RawMessage(resp.Result), nil
}

// register assigns a call id and returns the open stream, opening it first
// when needed.
func (t *remoteTasks) register(req *pluginv1.ExecuteRequest) (*execStream, *pendingCall, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nil, fmt.Errorf("task module %s: %w", t.c.name, ErrClosed)
	}
	if t.gs == nil {
		// The stream outlives any one call; Close or a broken stream ends it.
		sctx, cancel := context.WithCancel(context.Background())
		gs, err := t.rpc.Execute(sctx)
		if err != nil {
			cancel()
			err = t.c.mapErr(context.Background(), "execute", err)
			if !errors.Is(err, ErrUnavailable) {
				err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			return nil, nil, fmt.Errorf("%w: %w", ErrNotDelivered, err)
		}
		es := &execStream{gs: gs, batch: Has(t.c.Capabilities(), CapExecuteBatch), maxSize: t.c.maxSize}
		if !t.c.start(func() { t.receive(es) }) {
			cancel()
			return nil, nil, fmt.Errorf("%w: %w", ErrNotDelivered, t.c.errStopped("execute"))
		}
		t.gs, t.cancel = es, cancel
	}
	t.nextID++
	req.CallId = t.nextID
	pc := pendingCalls.Get().(*pendingCall)
	t.pending[req.CallId] = pc
	return t.gs, pc, nil
}

// receive hands each response to its call until the stream ends, then fails
// the calls still pending with the reason.
func (t *remoteTasks) receive(es *execStream) {
	var (
		one [1]*pluginv1.ExecuteResponse
		pcs []*pendingCall
	)
	for {
		resp, err := es.gs.Recv()
		if err != nil {
			t.broken(es, err)
			return
		}
		resps := resp.Batch
		if len(resps) == 0 {
			one[0] = resp
			resps = one[:]
		}
		// One lock for the batch: the callers registering meanwhile take
		// the same lock.
		pcs = pcs[:0]
		t.mu.Lock()
		for _, r := range resps {
			pc := t.pending[r.CallId]
			delete(t.pending, r.CallId)
			pcs = append(pcs, pc)
		}
		t.mu.Unlock()
		for i, r := range resps {
			if pc := pcs[i]; pc != nil {
				pc.done <- callOutcome{resp: r}
				<-t.window
			}
		}
		clear(pcs)
	}
}

func (t *remoteTasks) broken(gs *execStream, err error) {
	t.mu.Lock()
	closed := t.closed
	if t.gs == gs {
		t.gs = nil
		t.cancel()
	}
	pending := t.pending
	t.pending = map[uint64]*pendingCall{}
	t.mu.Unlock()
	var reason error
	switch {
	case closed:
		reason = fmt.Errorf("task module %s: %w", t.c.name, ErrClosed)
	case err == io.EOF:
		reason = fmt.Errorf("%w: task module %s ended its stream", ErrUnavailable, t.c.name)
	default:
		reason = t.c.mapErr(context.Background(), "execute", err)
		if !errors.Is(reason, ErrUnavailable) && t.c.Exited() {
			reason = fmt.Errorf("%w: task module %s exited: %w", ErrUnavailable, t.c.name, reason)
		}
	}
	for _, pc := range pending {
		pc.done <- callOutcome{err: reason}
		<-t.window
	}
}

// isClosed reports whether Close was called.
func (t *remoteTasks) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Close ends the stream: calls still running in the module are cancelled
// there and fail here with ErrClosed.
func (t *remoteTasks) Close(context.Context) error {
	t.mu.Lock()
	t.closed = true
	gs := t.gs
	t.mu.Unlock()
	if gs != nil {
		gs.closeSend()
	}
	return nil
}

// Interface guards
var (
	_ TaskModule = (*remoteTasks)(nil)
)
