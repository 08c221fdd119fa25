package sdk

import (
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// Hooks serves the hook calls of a host on one stream: each call runs on a
// goroutine of its own (calls of concurrent tasks do not wait for each
// other), and the replies ready at once travel in one message. The
// goroutines are kept for the next calls of the stream rather than started
// per call: a new one starts only when every kept one is busy, so a slow
// hook never holds up another, and a busy stream pays neither the start
// nor the stack growth of a goroutine per call.
func (s *middlewareServer) Hooks(gs grpc.BidiStreamingServer[pluginv1.HookBatch, pluginv1.HookReplies]) error {
	r, err := s.srv.configured(KindMiddleware)
	if err != nil {
		return err
	}
	ctx := gs.Context()
	replies := make(chan *pluginv1.HookReply, 256)
	sent := make(chan error, 1)
	go func() { sent <- sendHookReplies(gs, replies) }()
	run := func(c *pluginv1.HookCall) {
		rep := &pluginv1.HookReply{Id: c.Id}
		resp, err := s.runHook(ctx, r, c.Request)
		if err != nil {
			st := status.Convert(err)
			rep.Failure, rep.FailureCode = st.Message(), int32(st.Code())
		} else {
			rep.Response = resp
		}
		replies <- rep
	}
	// idle hands a call to a kept goroutine waiting for one.
	idle := make(chan *pluginv1.HookCall)
	var calls sync.WaitGroup
	defer func() {
		close(idle) // the kept goroutines finish their call and end
		calls.Wait()
		close(replies)
		<-sent
	}()
	for {
		b, err := gs.Recv()
		if err != nil {
			return nil // the host closed its side or went away
		}
		for _, c := range b.Calls {
			select {
			case idle <- c:
			default:
				calls.Add(1)
				go func() {
					defer calls.Done()
					run(c)
					for c := range idle {
						run(c)
					}
				}()
			}
		}
	}
}

// sendHookReplies sends replies as they come, joining those already
// waiting into one message, until replies is closed. After a send error it
// drains replies so that no call blocks.
func sendHookReplies(gs grpc.BidiStreamingServer[pluginv1.HookBatch, pluginv1.HookReplies], replies <-chan *pluginv1.HookReply) error {
	var failed error
	var last time.Time
	for rep := range replies {
		if wait := hookPace - time.Since(last); wait > 0 {
			time.Sleep(wait)
		}
		batch := &pluginv1.HookReplies{Replies: []*pluginv1.HookReply{rep}}
	more:
		for len(batch.Replies) < 256 {
			select {
			case next, ok := <-replies:
				if !ok {
					break more
				}
				batch.Replies = append(batch.Replies, next)
			default:
				break more
			}
		}
		if failed == nil {
			last = time.Now()
			failed = gs.Send(batch)
		}
	}
	return failed
}

// CapHookStream is the capability of a middleware role served by this SDK:
// its hooks can be called over the batched Hooks stream. Serve adds it; a
// plugin author never declares it. A host seeing a middleware without it
// (a plugin built with an older SDK) calls the unary Hook instead.
const CapHookStream = "hook_stream"

// withMiddlewareCaps returns caps with CapHookStream and CapHookLabelChanges
// added: every middleware this SDK serves has both.
func withMiddlewareCaps(caps []string) []string {
	return withCapability(withCapability(caps, CapHookStream), CapHookLabelChanges)
}

// withCapability returns caps with c added (a copy) unless it is there.
func withCapability(caps []string, c string) []string {
	if Has(caps, c) {
		return caps
	}
	return append(append([]string(nil), caps...), c)
}
