package sdk

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Hook response controls: how a hook's sentinel errors cross the boundary.
const (
	controlNoResult   = "no_result"
	controlDeadLetter = "dead_letter"
)

// ---- plugin side ----

// middlewareServer serves the Middleware service over the configured value.
type middlewareServer struct {
	pluginv1.UnimplementedMiddlewareServer
	srv *pluginServer
}

func (s *middlewareServer) Hook(ctx context.Context, req *pluginv1.HookRequest) (*pluginv1.HookResponse, error) {
	r, err := s.srv.configured(KindMiddleware)
	if err != nil {
		return nil, err
	}
	msg, err := wire.DecodeMessage(req.Message)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%s hook: %v", req.Hook, err)
	}
	var res *wire.Result
	if len(req.Result) > 0 {
		if res, err = wire.DecodeResult(req.Result); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s hook: %v", req.Hook, err)
		}
	}
	needResult := func() error {
		if res == nil {
			return status.Errorf(codes.InvalidArgument, "the %s hook needs a result", req.Hook)
		}
		return nil
	}
	notImplemented := status.Errorf(codes.Unimplemented, "middleware %s does not implement the %s hook", s.srv.p.Name, req.Hook)

	var hookErr error
	switch Hook(req.Hook) {
	case HookPreSend:
		h, ok := r.(PreSender)
		if !ok {
			return nil, notImplemented
		}
		hookErr = h.PreSend(ctx, msg)
	case HookPostSend:
		h, ok := r.(PostSender)
		if !ok {
			return nil, notImplemented
		}
		hookErr = h.PostSend(ctx, msg)
	case HookPreExecute:
		h, ok := r.(PreExecuter)
		if !ok {
			return nil, notImplemented
		}
		hookErr = h.PreExecute(ctx, msg)
	case HookOnError:
		h, ok := r.(ErrorHandler)
		if !ok {
			return nil, notImplemented
		}
		if err := needResult(); err != nil {
			return nil, err
		}
		var taskErr error
		if res.Error != nil {
			taskErr = res.Error
		}
		hookErr = h.OnError(ctx, msg, res, taskErr)
	case HookPostExecute:
		h, ok := r.(PostExecuter)
		if !ok {
			return nil, notImplemented
		}
		if err := needResult(); err != nil {
			return nil, err
		}
		hookErr = h.PostExecute(ctx, msg, res)
	case HookPostSave:
		h, ok := r.(PostSaver)
		if !ok {
			return nil, notImplemented
		}
		if err := needResult(); err != nil {
			return nil, err
		}
		hookErr = h.PostSave(ctx, msg, res)
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unknown middleware hook %q", req.Hook)
	}

	resp := &pluginv1.HookResponse{}
	if resp.Message, err = msg.AppendJSON(nil); err != nil {
		return nil, status.Errorf(codes.Internal, "%s hook: encode the message: %v", req.Hook, err)
	}
	if res != nil {
		if resp.Result, err = wire.EncodeResult(res); err != nil {
			return nil, status.Errorf(codes.Internal, "%s hook: encode the result: %v", req.Hook, err)
		}
	}
	switch {
	case hookErr == nil:
	case errors.Is(hookErr, ErrNoResult):
		resp.Control = controlNoResult
	default:
		if reason, ok := DeadLetterReason(hookErr); ok {
			resp.Control, resp.Error = controlDeadLetter, reason
		} else {
			resp.Error = hookErr.Error()
		}
	}
	return resp, nil
}

// ---- host side ----

// remoteMiddleware is a middleware served by a plugin process. It has every
// hook method; Hooks lists the ones the plugin declared, which are the only
// ones the host calls.
type remoteMiddleware struct {
	c     *Client
	rpc   pluginv1.MiddlewareClient
	hooks []Hook
}

func (m *remoteMiddleware) Hooks() []Hook { return append([]Hook(nil), m.hooks...) }

// call runs one hook in the plugin and writes the returned message and
// result back into msg and res.
func (m *remoteMiddleware) call(ctx context.Context, hook Hook, msg *wire.Message, res *wire.Result) error {
	if msg == nil {
		return fmt.Errorf("%s hook: nil message", hook)
	}
	req := &pluginv1.HookRequest{Hook: string(hook)}
	var err error
	if req.Message, err = msg.AppendJSON(nil); err != nil {
		return fmt.Errorf("%s hook: encode the message: %w", hook, err)
	}
	if res != nil {
		if req.Result, err = wire.EncodeResult(res); err != nil {
			return fmt.Errorf("%s hook: encode the result: %w", hook, err)
		}
	}
	resp, err := m.rpc.Hook(ctx, req)
	if err != nil {
		return m.c.mapErr(ctx, string(hook)+" hook", err)
	}
	if len(resp.Message) > 0 {
		d, err := wire.DecodeMessage(resp.Message)
		if err != nil {
			return fmt.Errorf("%s hook: the plugin returned a bad message: %w", hook, err)
		}
		*msg = *d
	}
	if len(resp.Result) > 0 && res != nil {
		d, err := wire.DecodeResult(resp.Result)
		if err != nil {
			return fmt.Errorf("%s hook: the plugin returned a bad result: %w", hook, err)
		}
		*res = *d
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
	_ PreSender                 = (*remoteMiddleware)(nil)
	_ PostSender                = (*remoteMiddleware)(nil)
	_ PreExecuter               = (*remoteMiddleware)(nil)
	_ ErrorHandler              = (*remoteMiddleware)(nil)
	_ PostExecuter              = (*remoteMiddleware)(nil)
	_ PostSaver                 = (*remoteMiddleware)(nil)
	_ HookLister                = (*remoteMiddleware)(nil)
	_ pluginv1.MiddlewareServer = (*middlewareServer)(nil)
)
