package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// hookStream carries a middleware's hook calls over the Hooks stream
// (capability CapHookStream): calls are queued, a sender joins those
// waiting into one message, and a receive loop hands each reply to its
// caller by id. The stream opens on the first call and again after it
// broke. Its two goroutines are the Client's (Client.start).
type hookStream struct {
	c   *Client
	rpc pluginv1.MiddlewareClient

	mu      sync.Mutex
	open    *hookConn // nil until the first call, or after a break
	next    uint64
	waiting map[uint64]chan hookResult
}

// hookConn is one open Hooks stream and its send queue.
type hookConn struct {
	gs     grpc.BidiStreamingClient[pluginv1.HookBatch, pluginv1.HookReplies]
	cancel context.CancelFunc
	queue  chan *pluginv1.HookCall
	done   chan struct{} // closed when the stream broke
}

type hookResult struct {
	resp *pluginv1.HookResponse
	err  error
}

// hookQueue bounds the calls waiting to be sent; callers wait beyond it.
const hookQueue = 1024

// maxHookBatch bounds the calls of one message.
const maxHookBatch = 256

func newHookStream(c *Client, rpc pluginv1.MiddlewareClient) *hookStream {
	return &hookStream{c: c, rpc: rpc, waiting: map[uint64]chan hookResult{}}
}

// replyChans keeps the reply channels of finished calls for the next ones:
// a channel goes back only once its reply was read, so it is empty and no
// one else holds it.
var replyChans = sync.Pool{New: func() any { return make(chan hookResult, 1) }}

// call sends req on the stream and waits for its reply.
func (h *hookStream) call(ctx context.Context, req *pluginv1.HookRequest) (*pluginv1.HookResponse, error) {
	reply := replyChans.Get().(chan hookResult)
	h.mu.Lock()
	conn, err := h.connLocked()
	if err != nil {
		h.mu.Unlock()
		return nil, err
	}
	h.next++
	id := h.next
	h.waiting[id] = reply
	h.mu.Unlock()
	select {
	case conn.queue <- &pluginv1.HookCall{Id: id, Request: req}:
	case <-conn.done:
	case <-ctx.Done():
		h.forget(id)
		return nil, ctx.Err()
	}
	select {
	case r := <-reply:
		replyChans.Put(reply)
		return r.resp, r.err
	case <-ctx.Done():
		h.forget(id)
		return nil, ctx.Err()
	}
}

func (h *hookStream) forget(id uint64) {
	h.mu.Lock()
	delete(h.waiting, id)
	h.mu.Unlock()
}

// connLocked returns the open stream, opening it if needed; h.mu is held.
func (h *hookStream) connLocked() (*hookConn, error) {
	if h.open != nil {
		return h.open, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	gs, err := h.rpc.Hooks(ctx)
	if err != nil {
		cancel()
		return nil, h.c.mapErr(ctx, "hooks stream", err)
	}
	conn := &hookConn{gs: gs, cancel: cancel, queue: make(chan *pluginv1.HookCall, hookQueue), done: make(chan struct{})}
	if !h.c.start(func() { h.receive(conn) }) {
		cancel()
		return nil, h.c.errStopped("hooks stream")
	}
	if !h.c.start(func() { h.sendLoop(conn) }) {
		cancel()
		return nil, h.c.errStopped("hooks stream")
	}
	h.open = conn
	return conn, nil
}

// hookPace spaces the sends of a busy stream, as settlePace does for
// settlements: a lone call goes out at once, but under load the calls of
// many tasks gather for up to hookPace and cross in one message, which is
// what makes a hook cheap (one write and one wake-up for dozens of calls).
var hookPace = 200 * time.Microsecond

// sendLoop sends the queued calls, those waiting together, until the
// stream breaks or the Client stops.
func (h *hookStream) sendLoop(conn *hookConn) {
	var last time.Time
	for {
		var first *pluginv1.HookCall
		select {
		case first = <-conn.queue:
		case <-conn.done:
			return
		case <-h.c.stopped:
			conn.cancel()
			return
		}
		if wait := hookPace - time.Since(last); wait > 0 {
			time.Sleep(wait)
		}
		batch := &pluginv1.HookBatch{Calls: []*pluginv1.HookCall{first}}
	more:
		for len(batch.Calls) < maxHookBatch {
			select {
			case next := <-conn.queue:
				batch.Calls = append(batch.Calls, next)
			default:
				break more
			}
		}
		last = time.Now()
		if err := conn.gs.Send(batch); err != nil {
			conn.cancel() // the receive loop reports the stream's error
			return
		}
	}
}

// receive hands replies to their callers until the stream breaks; then it
// fails every call still waiting, and the next call opens a new stream.
func (h *hookStream) receive(conn *hookConn) {
	for {
		rs, err := conn.gs.Recv()
		if err != nil {
			h.broke(conn, err)
			return
		}
		h.mu.Lock()
		for _, r := range rs.Replies {
			ch := h.waiting[r.Id]
			delete(h.waiting, r.Id)
			if ch == nil {
				continue // its caller gave up
			}
			res := hookResult{resp: r.Response}
			if r.Failure != "" {
				res = hookResult{err: h.c.mapErr(context.Background(), "hook", status.Error(codes.Code(r.FailureCode), r.Failure))}
			} else if r.Response == nil {
				res = hookResult{err: fmt.Errorf("plugin %s: hook call %d answered without a response", h.c.name, r.Id)}
			}
			ch <- res
		}
		h.mu.Unlock()
	}
}

func (h *hookStream) broke(conn *hookConn, err error) {
	conn.cancel()
	err = h.c.mapErr(context.Background(), "hooks stream", err)
	if errors.Is(err, context.Canceled) || err == nil {
		err = fmt.Errorf("%w: plugin %s: the hooks stream ended", ErrUnavailable, h.c.name)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open == conn {
		h.open = nil
	}
	close(conn.done)
	for id, ch := range h.waiting {
		ch <- hookResult{err: err}
		delete(h.waiting, id)
	}
}
