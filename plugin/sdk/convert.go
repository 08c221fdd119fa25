package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// toStatus maps an error of a role to a gRPC status whose code the host maps
// back to the same sentinel; the message is kept as is.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrUnsupported):
		code = codes.Unimplemented
	case errors.Is(err, ErrMessageTooLarge):
		code = codes.ResourceExhausted
	case errors.Is(err, ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, ErrUnauthenticated):
		code = codes.Unauthenticated
	case errors.Is(err, ErrClosed):
		code = codes.Aborted
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

func roleToProto(kind Kind, caps []string, hooks []Hook, schema Schema, maxSize int) *pluginv1.RoleInfo {
	r := &pluginv1.RoleInfo{Kind: string(kind), Capabilities: caps, Schema: &pluginv1.Schema{}, MaxMessageSize: int64(maxSize)}
	for _, h := range hooks {
		r.Hooks = append(r.Hooks, string(h))
	}
	for _, a := range schema.Attributes {
		pa := &pluginv1.Attribute{
			Name: a.Name, Type: string(a.Type), Required: a.Required,
			Sensitive: a.Sensitive, Description: a.Description,
			Allowed: a.Allowed, Integer: a.Integer, Min: a.Min, Max: a.Max,
		}
		if a.Default != nil {
			if b, err := a.DefaultJSON(); err == nil {
				pa.DefaultJson = string(b)
			} else if b, err := json.Marshal(a.Default); err == nil {
				pa.DefaultJson = string(b) // invalid: the host reports it as the plugin's bug
			}
		}
		r.Schema.Attributes = append(r.Schema.Attributes, pa)
	}
	return r
}

func infoFromProto(p *pluginv1.InfoResponse) Info {
	info := Info{Name: p.Name, Version: p.Version, ProtocolVersion: int(p.ProtocolVersion)}
	for _, r := range p.Roles {
		ri := RoleInfo{Kind: Kind(r.Kind), Capabilities: r.Capabilities, MaxMessageSize: int(r.MaxMessageSize)}
		for _, h := range r.Hooks {
			ri.Hooks = append(ri.Hooks, Hook(h))
		}
		for _, a := range r.GetSchema().GetAttributes() {
			attr := Attribute{
				Name: a.Name, Type: AttrType(a.Type), Required: a.Required,
				Sensitive: a.Sensitive, Description: a.Description,
				Allowed: a.Allowed, Integer: a.Integer, Min: a.Min, Max: a.Max,
			}
			if a.DefaultJson != "" {
				var v any
				if err := json.Unmarshal([]byte(a.DefaultJson), &v); err == nil {
					attr.Default = normalizeDefault(v)
				}
			}
			ri.Schema.Attributes = append(ri.Schema.Attributes, attr)
		}
		info.Roles = append(info.Roles, ri)
	}
	return info
}

// normalizeDefault turns JSON-decoded list and map defaults into the Go
// types the schema types name ([]string, map[string]string) when they fit.
func normalizeDefault(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return v
			}
			out = append(out, s)
		}
		return out
	case map[string]any:
		out := make(map[string]string, len(x))
		for k, e := range x {
			s, ok := e.(string)
			if !ok {
				return v
			}
			out[k] = s
		}
		return out
	}
	return v
}

// remoteError is an error that crossed the process boundary: the remote
// message, matching the sentinel its status code stands for.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Unwrap() error { return e.sentinel }

// fromStatus maps a gRPC status back to the sentinel toStatus started from.
func fromStatus(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	var sentinel error
	switch st.Code() {
	case codes.NotFound:
		sentinel = ErrNotFound
	case codes.Unimplemented:
		sentinel = ErrUnsupported
	case codes.ResourceExhausted:
		sentinel = ErrMessageTooLarge
	case codes.Unavailable:
		sentinel = ErrUnavailable
	case codes.Unauthenticated, codes.PermissionDenied:
		sentinel = ErrUnauthenticated
	case codes.Aborted:
		sentinel = ErrClosed
	case codes.Canceled, codes.DeadlineExceeded:
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, ctx.Err())
		}
		sentinel = context.Canceled
		if st.Code() == codes.DeadlineExceeded {
			sentinel = context.DeadlineExceeded
		}
	case codes.FailedPrecondition:
		return fmt.Errorf("%s: %s (configure the plugin first, for the role you use)", op, st.Message())
	default:
		return fmt.Errorf("%s: %s", op, st.Message())
	}
	msg := st.Message()
	if !strings.Contains(msg, sentinel.Error()) {
		msg = sentinel.Error() + ": " + msg
	}
	if sentinel == ErrMessageTooLarge && !strings.Contains(msg, "max_message_size") {
		msg += "; raise max_message_size in taskiq.hcl if such messages are expected"
	}
	return &remoteError{msg: op + ": " + msg, sentinel: sentinel}
}

// notFound is a plugin's "no result for taskID", on the host side.
func notFound(taskID string) error {
	return &remoteError{msg: ErrNotFound.Error() + ": task " + taskID, sentinel: ErrNotFound}
}

func tasksToProto(ts []TaskInfo) ([]*pluginv1.TaskInfo, error) {
	out := make([]*pluginv1.TaskInfo, 0, len(ts))
	for _, t := range ts {
		p := &pluginv1.TaskInfo{Name: t.Name, Result: t.Result}
		if len(t.Labels) > 0 {
			b, err := json.Marshal(t.Labels)
			if err != nil {
				return nil, fmt.Errorf("task %q: labels cannot be encoded as JSON: %w", t.Name, err)
			}
			p.LabelsJson = b
		}
		for _, a := range t.Params {
			p.Params = append(p.Params, &pluginv1.TaskParam{Name: a.Name, Type: a.Type})
		}
		out = append(out, p)
	}
	return out, nil
}

func tasksFromProto(ps []*pluginv1.TaskInfo) ([]TaskInfo, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	out := make([]TaskInfo, 0, len(ps))
	for _, p := range ps {
		t := TaskInfo{Name: p.Name, Result: p.Result}
		if len(p.LabelsJson) > 0 {
			if err := json.Unmarshal(p.LabelsJson, &t.Labels); err != nil {
				return nil, fmt.Errorf("task %q: the module sent labels that are not a JSON object: %w", p.Name, err)
			}
		}
		for _, a := range p.Params {
			t.Params = append(t.Params, ParamInfo{Name: a.Name, Type: a.Type})
		}
		out = append(out, t)
	}
	return out, nil
}

// outgoingToProto and outgoingFromProto carry a message to kick.
func outgoingToProto(m Outgoing) *pluginv1.Outgoing {
	return &pluginv1.Outgoing{
		TaskId: m.TaskID, TaskName: m.TaskName, Body: m.Body, Queue: m.Queue,
		DelayMs: m.Delay.Milliseconds(), Priority: int32(m.Priority),
	}
}

func outgoingFromProto(m *pluginv1.Outgoing) Outgoing {
	return Outgoing{
		TaskID: m.TaskId, TaskName: m.TaskName, Body: m.Body, Queue: m.Queue,
		Delay: time.Duration(m.DelayMs) * time.Millisecond, Priority: int(m.Priority),
	}
}

// listenStartToProto and listenRequestFromProto carry the start of a
// delivery stream; the prefetch travels in the start message because the
// credit window is the stream's, not the broker's.
func listenStartToProto(req ListenRequest, prefetch int) *pluginv1.ListenStart {
	start := &pluginv1.ListenStart{
		StrictPriority: req.StrictPriority,
		Prefetch:       int32(prefetch),
		LeaseMs:        req.Lease.Milliseconds(),
	}
	for _, q := range req.Queues {
		start.Queues = append(start.Queues, &pluginv1.Queue{Name: q.Name, Weight: int32(q.Weight)})
	}
	return start
}

func listenRequestFromProto(start *pluginv1.ListenStart) ListenRequest {
	req := ListenRequest{StrictPriority: start.StrictPriority, Lease: time.Duration(start.LeaseMs) * time.Millisecond}
	for _, q := range start.Queues {
		req.Queues = append(req.Queues, Queue{Name: q.Name, Weight: int(q.Weight)})
	}
	return req
}

// deliveryToProto and deliveryFromProto carry one delivery; a zero lease
// deadline (no lease) is 0 on the wire.
func deliveryToProto(d Delivery) *pluginv1.Delivery {
	pd := &pluginv1.Delivery{Id: d.ID, Body: d.Body, Queue: d.Queue, Attempt: int32(d.Attempt)}
	if !d.LeaseDeadline.IsZero() {
		pd.LeaseDeadlineUnixMs = d.LeaseDeadline.UnixMilli()
	}
	return pd
}

func deliveryFromProto(d *pluginv1.Delivery) Delivery {
	out := Delivery{ID: d.Id, Body: d.Body, Queue: d.Queue, Attempt: int(d.Attempt)}
	if d.LeaseDeadlineUnixMs != 0 {
		out.LeaseDeadline = time.UnixMilli(d.LeaseDeadlineUnixMs)
	}
	return out
}

// settlementToProto and settlementFromProto carry one settlement. Every
// kind but a lease extension ends the delivery, so it returns its credit.
func settlementToProto(x Settlement) *pluginv1.Settlement {
	return &pluginv1.Settlement{
		DeliveryId: x.DeliveryID, Kind: pluginv1.Settlement_Kind(x.Kind),
		DelayMs: x.Delay.Milliseconds(), Reason: x.Reason,
		Credit: x.Kind != SettleExtend,
	}
}

func settlementFromProto(p *pluginv1.Settlement) Settlement {
	return Settlement{
		DeliveryID: p.DeliveryId, Kind: SettleKind(p.Kind),
		Delay: time.Duration(p.DelayMs) * time.Millisecond, Reason: p.Reason,
	}
}
