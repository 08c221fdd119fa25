package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// remoteMiddleware is a middleware served by a plugin process. It has every
// hook method; Hooks lists the ones the plugin declared, which are the only
// ones the host calls.
type remoteMiddleware struct {
	c     *Client
	rpc   pluginv1.MiddlewareClient
	hooks []Hook
	// stream, when the plugin declares CapHookStream, carries the calls in
	// batches; nil: one Hook RPC per call.
	stream *hookStream
	// labelChanges, when the plugin declares CapHookLabelChanges: the
	// calls ask for answers carrying only what the hook changed.
	labelChanges bool
}

func (m *remoteMiddleware) Hooks() []Hook { return append([]Hook(nil), m.hooks...) }

// hookBufs keeps the buffers messages are encoded into for hook calls.
var hookBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// call runs one hook in the plugin and writes the returned message and
// result back into msg and res.
func (m *remoteMiddleware) call(ctx context.Context, hook Hook, msg *wire.Message, res *wire.Result) error {
	if msg == nil {
		return fmt.Errorf("%s hook: nil message", hook)
	}
	req := &pluginv1.HookRequest{Hook: string(hook), LabelChanges: m.labelChanges}
	buf := hookBufs.Get().(*[]byte)
	answered := false
	defer func() {
		// Once the plugin answered, the request was sent and nothing refers
		// to the buffer any more; a call that failed may still sit in the
		// send queue, so its buffer is left to the garbage collector.
		if answered {
			*buf = req.Message[:0]
			hookBufs.Put(buf)
		}
	}()
	var err error
	if req.Message, err = msg.AppendJSON((*buf)[:0]); err != nil {
		return fmt.Errorf("%s hook: encode the message: %w", hook, err)
	}
	if res != nil {
		if req.Result, err = wire.EncodeResult(res); err != nil {
			return fmt.Errorf("%s hook: encode the result: %w", hook, err)
		}
	}
	var resp *pluginv1.HookResponse
	if m.stream != nil {
		if resp, err = m.stream.call(ctx, req); err != nil {
			return err
		}
	} else if resp, err = m.rpc.Hook(ctx, req); err != nil {
		return m.c.mapErr(ctx, string(hook)+" hook", err)
	}
	answered = true
	if len(resp.Message) > 0 {
		d, err := wire.DecodeMessage(resp.Message)
		if err != nil {
			return fmt.Errorf("%s hook: the plugin returned a bad message: %w", hook, err)
		}
		*msg = *d
	} else if len(resp.MessageLabels) > 0 && m.labelChanges {
		applyMessageLabels(msg, resp.MessageLabels)
	}
	if len(resp.Result) > 0 && res != nil {
		d, err := wire.DecodeResult(resp.Result)
		if err != nil {
			return fmt.Errorf("%s hook: the plugin returned a bad result: %w", hook, err)
		}
		*res = *d
	} else if len(resp.ResultLabels) > 0 && res != nil && m.labelChanges {
		if err := applyResultLabels(res, resp.ResultLabels); err != nil {
			return fmt.Errorf("%s hook: the plugin returned a bad result: %w", hook, err)
		}
	}
	switch resp.Control {
	case controlNoResult:
		return ErrNoResult
	case controlDeadLetter:
		return DeadLetter(resp.Error)
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	return nil
}

func (m *remoteMiddleware) PreSend(ctx context.Context, msg *wire.Message) error {
	return m.call(ctx, HookPreSend, msg, nil)
}

func (m *remoteMiddleware) PostSend(ctx context.Context, msg *wire.Message) error {
	return m.call(ctx, HookPostSend, msg, nil)
}

func (m *remoteMiddleware) PreExecute(ctx context.Context, msg *wire.Message) error {
	return m.call(ctx, HookPreExecute, msg, nil)
}

// OnError passes err to the plugin as res.Error; when res carries no error
// yet, err is converted with wire.FromError and stored there.
func (m *remoteMiddleware) OnError(ctx context.Context, msg *wire.Message, res *wire.Result, err error) error {
	if res == nil {
		res = &wire.Result{IsErr: true}
	}
	if res.Error == nil && err != nil {
		res.Error = wire.FromError(err)
	}
	return m.call(ctx, HookOnError, msg, res)
}

func (m *remoteMiddleware) PostExecute(ctx context.Context, msg *wire.Message, res *wire.Result) error {
	return m.call(ctx, HookPostExecute, msg, res)
}

func (m *remoteMiddleware) PostSave(ctx context.Context, msg *wire.Message, res *wire.Result) error {
	return m.call(ctx, HookPostSave, msg, res)
}

// Close asks the plugin to close the middleware; the process stays up until
// Client.Close.
func (m *remoteMiddleware) Close(ctx context.Context) error {
	return m.c.shutdownRole(ctx)
}

// Interface guards
var (
	_ PreSender    = (*remoteMiddleware)(nil)
	_ PostSender   = (*remoteMiddleware)(nil)
	_ PreExecuter  = (*remoteMiddleware)(nil)
	_ ErrorHandler = (*remoteMiddleware)(nil)
	_ PostExecuter = (*remoteMiddleware)(nil)
	_ PostSaver    = (*remoteMiddleware)(nil)
	_ HookLister   = (*remoteMiddleware)(nil)
)
