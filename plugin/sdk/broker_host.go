package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// remoteBroker is a Broker served by a plugin process.
type remoteBroker struct {
	c   *Client
	rpc pluginv1.BrokerClient
}

// MaxMessageSize is the broker's own message size limit (0: none).
func (b *remoteBroker) MaxMessageSize() int { return b.c.RoleMaxMessageSize() }

// Kick sends the batch in one request, or in several when the bodies
// together would exceed the message size limit.
func (b *remoteBroker) Kick(ctx context.Context, msgs []Outgoing) error {
	out := make([]*pluginv1.Outgoing, len(msgs))
	roleMax := b.c.RoleMaxMessageSize()
	for i, m := range msgs {
		if len(m.Body) > b.c.maxSize {
			return tooLarge(fmt.Sprintf("message %s (task %s)", m.TaskID, m.TaskName), len(m.Body), b.c.maxSize)
		}
		if roleMax > 0 && len(m.Body) > roleMax {
			return fmt.Errorf("%w: message %s (task %s) is %d bytes, over the limit of broker plugin %s (%d bytes; the host's max_message_size is %d)",
				ErrMessageTooLarge, m.TaskID, m.TaskName, len(m.Body), b.c.name, roleMax, b.c.maxSize)
		}
		out[i] = outgoingToProto(m)
	}
	for _, chunk := range chunkBySize(out, b.c.maxSize, func(o *pluginv1.Outgoing) int {
		return len(o.Body) + len(o.TaskId) + len(o.TaskName) + len(o.Queue)
	}) {
		if _, err := b.rpc.Kick(ctx, &pluginv1.KickRequest{Messages: chunk}); err != nil {
			return b.c.mapErr(ctx, "kick", err)
		}
	}
	return nil
}

// Listen opens a delivery stream. ctx bounds the stream's whole life, as
// with any gRPC stream; Close ends it earlier.
func (b *remoteBroker) Listen(ctx context.Context, req ListenRequest) (Stream, error) {
	sctx, cancel := context.WithCancel(ctx)
	gs, err := b.rpc.Listen(sctx)
	if err != nil {
		cancel()
		return nil, b.c.mapErr(ctx, "listen", err)
	}
	prefetch := b.c.prefetch
	if req.Prefetch > 0 {
		prefetch = req.Prefetch
	}
	start := listenStartToProto(req, prefetch)
	if err := gs.Send(&pluginv1.ListenRequest{Msg: &pluginv1.ListenRequest_Start{Start: start}}); err != nil && err != io.EOF {
		cancel()
		return nil, b.c.mapErr(ctx, "listen", err)
	}
	// Wait until the plugin opened its stream, so a refusal (not
	// configured, bad queue) is Listen's error rather than the first Recv's.
	md, err := gs.Header()
	if err != nil || len(md.Get(listenReadyKey)) == 0 {
		if err == nil || err == io.EOF {
			_, err = gs.Recv()
			if err == nil || err == io.EOF {
				err = status.Error(codes.Aborted, "the broker plugin ended the stream before it started")
			}
		}
		cancel()
		return nil, b.c.mapErr(ctx, "listen", err)
	}
	s := &remoteStream{
		c: b.c, gs: gs, ctx: sctx, cancel: cancel,
		batches: make(chan []Delivery, prefetch),
		done:    make(chan struct{}),
		track:   Has(b.c.Capabilities(), CapStableIDs),
	}
	if !b.c.start(s.run) {
		cancel()
		return nil, b.c.errStopped("listen")
	}
	return s, nil
}

// Close asks the plugin to drain and close the broker; the process stays up
// until Client.Close.
func (b *remoteBroker) Close(ctx context.Context) error {
	return b.c.shutdownRole(ctx)
}

// remoteStream is the host side of a delivery stream. Deliveries arrive in
// batches into a buffer bounded by the credit window; terminal settlements
// return credit.
type remoteStream struct {
	c      *Client
	gs     pluginv1.Broker_ListenClient
	ctx    context.Context
	cancel context.CancelFunc

	batches chan []Delivery
	done    chan struct{} // closed when the receive loop ends; err is set then
	err     error

	recvMu  sync.Mutex
	pending []Delivery

	sendMu    sync.Mutex
	closed    bool
	closeOnce sync.Once

	errMu     sync.Mutex
	settleErr error // a settle failure reported by the plugin, returned by the next Settle

	// With stable ids (track), Settle messages are numbered and kept, under
	// sendMu, until the plugin says they were applied; those left when the
	// stream ends are what Unapplied returns.
	track     bool
	seq       uint64
	unapplied []numberedSettle
	granted   atomic.Int64 // the broker's granted lease in ms; 0: unknown
}

// numberedSettle is one Settle message sent and not yet applied.
type numberedSettle struct {
	seq uint64
	ss  []Settlement
}

// UnappliedReporter is implemented by the host's side of a plugin's
// delivery stream for a broker declaring CapStableIDs: once the stream has
// ended, Unapplied returns the settlements sent on it that the plugin did
// not confirm as applied (its process died first), so the host can send
// them on the next stream.
type UnappliedReporter interface {
	Unapplied() []Settlement
}

// Unapplied returns, once the stream has ended, the settlements the plugin
// did not confirm, and forgets them; before that, nil.
func (s *remoteStream) Unapplied() []Settlement {
	select {
	case <-s.done:
	default:
		return nil
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	var out []Settlement
	for _, b := range s.unapplied {
		out = append(out, b.ss...)
	}
	s.unapplied = nil
	return out
}

// GrantedLease is the lease the broker said it grants (LeaseGranter).
func (s *remoteStream) GrantedLease() time.Duration {
	return time.Duration(s.granted.Load()) * time.Millisecond
}

// applied forgets the settlements the plugin applied, up to seq.
func (s *remoteStream) applied(seq uint64) {
	s.sendMu.Lock()
	i := 0
	for i < len(s.unapplied) && s.unapplied[i].seq <= seq {
		i++
	}
	s.unapplied = s.unapplied[i:]
	s.sendMu.Unlock()
}

func (s *remoteStream) run() {
	defer close(s.done)
	for {
		resp, err := s.gs.Recv()
		if err != nil {
			s.err = s.streamErr(err)
			return
		}
		if resp.GrantedLeaseMs > 0 {
			s.granted.Store(resp.GrantedLeaseMs)
		}
		if resp.AppliedSeq > 0 {
			s.applied(resp.AppliedSeq)
		}
		if resp.Error != "" {
			s.c.logger.Error("broker plugin failed to apply settlements", "error", resp.Error)
			s.errMu.Lock()
			s.settleErr = errors.New(resp.Error)
			s.errMu.Unlock()
		}
		if len(resp.Deliveries) == 0 {
			continue
		}
		ds := make([]Delivery, len(resp.Deliveries))
		for i, d := range resp.Deliveries {
			ds[i] = deliveryFromProto(d)
		}
		// The credit window bounds the batches to the buffer, so this
		// waits only for a plugin that sent more than its credit: the
		// stream's end or the Client's stop ends the wait then.
		select {
		case s.batches <- ds:
		case <-s.ctx.Done():
			s.err = s.streamErr(s.ctx.Err())
			return
		case <-s.c.stopped:
			s.err = s.c.errStopped("delivery stream")
			return
		}
	}
}

// streamErr explains why the stream ended.
func (s *remoteStream) streamErr(err error) error {
	s.sendMu.Lock()
	closed := s.closed
	s.sendMu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case err == io.EOF:
		return fmt.Errorf("%w: the broker plugin ended the delivery stream", ErrClosed)
	case s.ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ErrClosed, s.ctx.Err())
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Aborted {
		return fmt.Errorf("%w: %s", ErrClosed, st.Message())
	}
	mapped := s.c.mapErr(context.Background(), "delivery stream", err)
	if !errors.Is(mapped, ErrUnavailable) && s.c.Exited() {
		mapped = fmt.Errorf("%w: broker plugin %s exited: %w", ErrUnavailable, s.c.name, mapped)
	}
	return mapped
}

// Recv returns up to max buffered deliveries, waiting for at least one.
// Once the stream has ended it returns the reason (ErrClosed, or an error
// wrapping ErrUnavailable when the plugin died); deliveries still buffered
// are not handed out then, since they could no longer be settled.
func (s *remoteStream) Recv(ctx context.Context, max int) ([]Delivery, error) {
	if max <= 0 {
		max = 1
	}
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	select {
	case <-s.done:
		return nil, s.err
	default:
	}
	if len(s.pending) == 0 {
		select {
		case b := <-s.batches:
			s.pending = b
		case <-s.done:
			return nil, s.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	n := min(max, len(s.pending))
	out := s.pending[:n:n]
	s.pending = s.pending[n:]
	if len(s.pending) == 0 {
		s.pending = nil
	}
	return out, nil
}

// Settle sends a batch of settlements; ack, nack and dead letter return
// their delivery's credit. A failure the plugin reported for an earlier
// batch is returned here.
func (s *remoteStream) Settle(ctx context.Context, ss []Settlement) error {
	if len(ss) == 0 {
		return nil
	}
	msg := &pluginv1.Settle{Settlements: make([]*pluginv1.Settlement, len(ss))}
	for i, x := range ss {
		msg.Settlements[i] = settlementToProto(x)
	}
	s.sendMu.Lock()
	if s.closed {
		s.sendMu.Unlock()
		return ErrClosed
	}
	select {
	case <-s.done:
		s.sendMu.Unlock()
		return s.err
	default:
	}
	if s.track {
		s.seq++
		msg.Seq = s.seq
		s.unapplied = append(s.unapplied, numberedSettle{seq: s.seq, ss: append([]Settlement(nil), ss...)})
	}
	err := s.gs.Send(&pluginv1.ListenRequest{Msg: &pluginv1.ListenRequest_Settle{Settle: msg}})
	if err != nil && s.track {
		// Not sent: the caller gets the error and handles these itself.
		s.unapplied = s.unapplied[:len(s.unapplied)-1]
	}
	s.sendMu.Unlock()
	if err != nil {
		// io.EOF means the stream is over; its status comes from Recv.
		select {
		case <-s.done:
			return s.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.errMu.Lock()
	prev := s.settleErr
	s.settleErr = nil
	s.errMu.Unlock()
	if prev != nil {
		return fmt.Errorf("broker plugin failed to settle an earlier batch: %w", prev)
	}
	return nil
}

// Close closes the host's side; the plugin applies the settlements already
// sent, closes its broker stream and ends. Close waits for that, at most
// streamCloseTimeout, then cuts the stream.
func (s *remoteStream) Close() error {
	s.closeOnce.Do(func() {
		s.sendMu.Lock()
		s.closed = true
		_ = s.gs.CloseSend()
		s.sendMu.Unlock()
		select {
		case <-s.done:
		case <-time.After(streamCloseTimeout):
		}
		s.cancel()
		<-s.done
	})
	return nil
}

// Interface guards
var (
	_ Broker            = (*remoteBroker)(nil)
	_ Stream            = (*remoteStream)(nil)
	_ UnappliedReporter = (*remoteStream)(nil)
	_ LeaseGranter      = (*remoteStream)(nil)
)
