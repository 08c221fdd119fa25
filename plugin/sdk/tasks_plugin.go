package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// tasksServer serves the TaskModule service over the configured module.
type tasksServer struct {
	pluginv1.UnimplementedTaskModuleServer
	srv *pluginServer
}

// Execute runs the requests of the stream concurrently and answers in
// completion order. The host bounds how many are outstanding; the plugin
// trusts it. When the host closes the stream, running calls are cancelled.
//
// A request runs on a goroutine of the stream's pool (execPool): one that
// finished a call waits for the next instead of exiting, so a task does not
// pay for a new goroutine and for growing its stack again.
func (s *tasksServer) Execute(gs pluginv1.TaskModule_ExecuteServer) error {
	r, err := s.srv.configured(KindTasks)
	if err != nil {
		return err
	}
	m := r.(TaskModule)
	ctx, cancel := context.WithCancel(gs.Context())
	defer cancel()

	var (
		mu      sync.Mutex
		running = map[uint64]context.CancelFunc{}
		pool    = newExecPool(maxIdleExecutors)
		out     = &resultSender{gs: gs, maxSize: s.srv.maxSize, warn: func(err error) {
			if ctx.Err() == nil {
				s.srv.logger.Warn("sending task results to the host failed", "error", err)
			}
		}}
		one [1]*pluginv1.ExecuteRequest
	)
	defer pool.close()
	// A call's context is not a child of ctx: a child context is added to
	// and removed from its parent's set under the parent's lock, and with
	// hundreds of calls running at once that cost 10% of the module's CPU.
	// The calls are cancelled from running when ctx ends instead.
	base := context.WithoutCancel(ctx)
	context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range running {
			c()
		}
	})
	for {
		msg, err := gs.Recv()
		if err != nil {
			cancel()
			if err == io.EOF || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if msg.AcceptsBatch {
			out.batch.Store(true)
		}
		reqs := msg.Batch
		if len(reqs) == 0 {
			one[0] = msg
			reqs = one[:]
		}
		for _, req := range reqs {
			if req.Cancel {
				mu.Lock()
				if c := running[req.CallId]; c != nil {
					c()
				}
				mu.Unlock()
				continue
			}
			callCtx, callCancel := context.WithCancel(base)
			if req.DeadlineUnixMs > 0 {
				callCtx, callCancel = context.WithDeadline(base, time.UnixMilli(req.DeadlineUnixMs))
			}
			mu.Lock()
			running[req.CallId] = callCancel
			mu.Unlock()
			if ctx.Err() != nil {
				callCancel() // ctx ended before the call was in running
			}
			pool.run(func() {
				resp := s.run(callCtx, m, req)
				callCancel()
				mu.Lock()
				delete(running, req.CallId)
				mu.Unlock()
				out.send(resp)
			})
		}
	}
}

// maxIdleExecutors bounds the goroutines an Execute stream keeps waiting
// for work: past a burst of more concurrent calls, the goroutines beyond it
// exit when their call ends.
const maxIdleExecutors = 1024

// execPool runs functions on goroutines that, once done, wait for the next
// one (at most maxIdle of them wait; the others exit). run and close are
// called from one goroutine (the stream's receive loop).
type execPool struct {
	jobs    chan func() // unbuffered: a send succeeds only to a waiting goroutine
	maxIdle int32
	idle    atomic.Int32
	wg      sync.WaitGroup
}

func newExecPool(maxIdle int) *execPool {
	return &execPool{jobs: make(chan func()), maxIdle: int32(maxIdle)}
}

// run runs fn on a waiting goroutine, or on a new one when none waits.
func (p *execPool) run(fn func()) {
	select {
	case p.jobs <- fn:
	default:
		p.wg.Add(1)
		go p.work(fn)
	}
}

func (p *execPool) work(fn func()) {
	defer p.wg.Done()
	for {
		fn()
		if p.idle.Add(1) > p.maxIdle {
			p.idle.Add(-1)
			return
		}
		var ok bool
		if fn, ok = <-p.jobs; !ok {
			return
		}
		p.idle.Add(-1)
	}
}

// close lets the waiting goroutines exit and waits for the running calls.
func (p *execPool) close() {
	close(p.jobs)
	p.wg.Wait()
}

// resultSender sends the responses of one Execute stream, batched to a
// host that reads batches (sendQueue).
type resultSender struct {
	gs      pluginv1.TaskModule_ExecuteServer
	maxSize int
	warn    func(error)
	batch   atomic.Bool // the host set accepts_batch

	out sendQueue[*pluginv1.ExecuteResponse]
}

func (r *resultSender) send(resp *pluginv1.ExecuteResponse) {
	if err := r.out.push(resp, r.write); err != nil {
		r.warn(err)
	}
}

// write is called by one goroutine at a time (the one flushing).
func (r *resultSender) write(resps []*pluginv1.ExecuteResponse) error {
	if !r.batch.Load() || len(resps) == 1 {
		for _, resp := range resps {
			if err := r.gs.Send(resp); err != nil {
				return err
			}
		}
		return nil
	}
	for _, b := range chunkBySize(resps, r.maxSize, responseSize) {
		if err := r.gs.Send(&pluginv1.ExecuteResponse{Batch: b}); err != nil {
			return err
		}
	}
	return nil
}

func responseSize(r *pluginv1.ExecuteResponse) int { return len(r.Result) + len(r.Error) }

// run executes one request; every failure becomes the response's error.
func (s *tasksServer) run(ctx context.Context, m TaskModule, req *pluginv1.ExecuteRequest) (resp *pluginv1.ExecuteResponse) {
	resp = &pluginv1.ExecuteResponse{CallId: req.CallId}
	fail := func(err error) *pluginv1.ExecuteResponse {
		b, merr := json.Marshal(wire.FromError(err))
		if merr != nil {
			b, _ = json.Marshal(wire.FromError(errors.New(err.Error())))
		}
		resp.Result, resp.Error = nil, b
		return resp
	}
	if len(req.Message) > s.srv.maxSize {
		return fail(tooLarge("the message of call "+fmt.Sprint(req.CallId), len(req.Message), s.srv.maxSize))
	}
	msg, err := wire.DecodeMessage(req.Message)
	if err != nil {
		return fail(fmt.Errorf("task module %s: %w", s.srv.p.Name, err))
	}
	call := &TaskCall{Broker: req.Broker, DeliveryID: req.DeliveryId, Attempt: int(req.Attempt), Body: req.Message}
	defer func() {
		if p := recover(); p != nil {
			s.srv.logger.Error("task panicked in the module", "task", msg.TaskName, "task_id", msg.TaskID, "panic", p)
			resp = fail(&modulePanic{value: fmt.Sprint(p)})
		}
		resp.Acked = call.Acked()
	}()
	ret, err := m.Execute(WithTaskCall(ctx, call), msg)
	switch {
	case errors.Is(err, ErrRequeue):
		resp.Control = controlRequeue
	case errors.Is(err, ErrReject):
		resp.Control = controlReject
	case err != nil:
		if errors.Is(err, ErrBadArguments) {
			resp.ErrorKind = errorKindArguments
		}
		return fail(err)
	case len(ret) > s.srv.maxSize:
		return fail(tooLarge(fmt.Sprintf("the result of task %s (%s)", msg.TaskID, msg.TaskName), len(ret), s.srv.maxSize))
	default:
		resp.Result = ret
	}
	return resp
}

// modulePanic is a task's error when it panicked inside the module process.
type modulePanic struct{ value string }

func (e *modulePanic) Error() string { return "task panicked: " + e.value }

func (e *modulePanic) ErrorType() string { return "Panic" }

// Interface guards
var (
	_ pluginv1.TaskModuleServer = (*tasksServer)(nil)
)
