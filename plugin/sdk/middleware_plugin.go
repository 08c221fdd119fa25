package sdk

import (
	"bytes"
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

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
	return s.runHook(ctx, r, req)
}

// runHook runs one hook call on the configured middleware r.
func (s *middlewareServer) runHook(ctx context.Context, r any, req *pluginv1.HookRequest) (*pluginv1.HookResponse, error) {
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
	// Asked for label changes, the hook's answer says what it changed
	// rather than carrying the message and result back whole.
	var msgBefore messageSnapshot
	var resBefore resultSnapshot
	if req.LabelChanges {
		msgBefore = snapshotMessage(msg)
		if res != nil {
			resBefore = snapshotResult(res)
		}
	}
	// Built only when needed: formatting it for every call cost 5% of a
	// middleware plugin's CPU.
	notImplemented := func() error {
		return status.Errorf(codes.Unimplemented, "middleware %s does not implement the %s hook", s.srv.p.Name, req.Hook)
	}

	var hookErr error
	switch Hook(req.Hook) {
	case HookPreSend:
		h, ok := r.(PreSender)
		if !ok {
			return nil, notImplemented()
		}
		hookErr = h.PreSend(ctx, msg)
	case HookPostSend:
		h, ok := r.(PostSender)
		if !ok {
			return nil, notImplemented()
		}
		hookErr = h.PostSend(ctx, msg)
	case HookPreExecute:
		h, ok := r.(PreExecuter)
		if !ok {
			return nil, notImplemented()
		}
		hookErr = h.PreExecute(ctx, msg)
	case HookOnError:
		h, ok := r.(ErrorHandler)
		if !ok {
			return nil, notImplemented()
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
			return nil, notImplemented()
		}
		if err := needResult(); err != nil {
			return nil, err
		}
		hookErr = h.PostExecute(ctx, msg, res)
	case HookPostSave:
		h, ok := r.(PostSaver)
		if !ok {
			return nil, notImplemented()
		}
		if err := needResult(); err != nil {
			return nil, err
		}
		hookErr = h.PostSave(ctx, msg, res)
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unknown middleware hook %q", req.Hook)
	}

	resp := &pluginv1.HookResponse{}
	if req.LabelChanges && msgBefore.labelsOnly(msg) {
		resp.MessageLabels = messageLabelChanges(msgBefore.labels, msg.Labels)
	} else {
		if resp.Message, err = msg.AppendJSON(nil); err != nil {
			return nil, status.Errorf(codes.Internal, "%s hook: encode the message: %v", req.Hook, err)
		}
		// What the hook left as it was goes back empty ("unchanged"), so
		// the host does not decode it again.
		if bytes.Equal(resp.Message, req.Message) {
			resp.Message = nil
		}
	}
	if res != nil {
		changes, ok := []*pluginv1.LabelChange(nil), false
		if req.LabelChanges && resBefore.labelsOnly(res) {
			changes, ok = resultLabelChanges(resBefore.labels, res.Labels)
		}
		if ok {
			resp.ResultLabels = changes
		} else {
			if resp.Result, err = wire.EncodeResult(res); err != nil {
				return nil, status.Errorf(codes.Internal, "%s hook: encode the result: %v", req.Hook, err)
			}
			if bytes.Equal(resp.Result, req.Result) {
				resp.Result = nil
			}
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

// Interface guards
var (
	_ pluginv1.MiddlewareServer = (*middlewareServer)(nil)
)
