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

// Execute runs every request of the stream on its own goroutine and answers
// in completion order. The host bounds how many are outstanding; the plugin
// trusts it. When the host closes the stream, running calls are cancelled.
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
		wg      sync.WaitGroup
		out     = &resultSender{gs: gs, maxSize: s.srv.maxSize, warn: func(err error) {
			if ctx.Err() == nil {
				s.srv.logger.Warn("sending task results to the host failed", "error", err)
			}
		}}
		one [1]*pluginv1.ExecuteRequest
	)
	defer wg.Wait()
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
			callCtx, callCancel := context.WithCancel(ctx)
			if req.DeadlineUnixMs > 0 {
				callCtx, callCancel = context.WithDeadline(ctx, time.UnixMilli(req.DeadlineUnixMs))
			}
			mu.Lock()
			running[req.CallId] = callCancel
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp := s.run(callCtx, m, req)
				callCancel()
				mu.Lock()
				delete(running, req.CallId)
				mu.Unlock()
				out.send(resp)
			}()
		}
	}
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
