package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// streamCloseTimeout bounds how long closing a delivery stream waits for the
// plugin to apply the settlements already sent before the stream is cut.
const streamCloseTimeout = 5 * time.Second

// listenReadyKey is the header a plugin sends once Broker.Listen succeeded,
// so the host's Listen reports a failure to open synchronously.
const listenReadyKey = "taskiq-listen"

// ---- plugin side ----

// brokerServer serves the Broker service over the configured Broker.
type brokerServer struct {
	pluginv1.UnimplementedBrokerServer
	srv *pluginServer
}

func (s *brokerServer) broker() (Broker, error) {
	r, err := s.srv.configured(KindBroker)
	if err != nil {
		return nil, err
	}
	return r.(Broker), nil
}

func (s *brokerServer) Kick(ctx context.Context, req *pluginv1.KickRequest) (*pluginv1.KickResponse, error) {
	b, err := s.broker()
	if err != nil {
		return nil, err
	}
	msgs := make([]Outgoing, len(req.Messages))
	for i, m := range req.Messages {
		if len(m.Body) > s.srv.maxSize {
			return nil, toStatus(tooLarge(fmt.Sprintf("message %s (task %s)", m.TaskId, m.TaskName), len(m.Body), s.srv.maxSize))
		}
		msgs[i] = Outgoing{
			TaskID: m.TaskId, TaskName: m.TaskName, Body: m.Body, Queue: m.Queue,
			Delay: time.Duration(m.DelayMs) * time.Millisecond, Priority: int(m.Priority),
		}
	}
	if err := b.Kick(ctx, msgs); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.KickResponse{}, nil
}

// Listen runs one delivery stream: deliveries flow to the host while it has
// credit; settlements and credit flow back.
func (s *brokerServer) Listen(gs pluginv1.Broker_ListenServer) error {
	b, err := s.broker()
	if err != nil {
		return err
	}
	first, err := gs.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "the first message of a Listen stream must be a start message")
	}
	req := ListenRequest{StrictPriority: start.StrictPriority, Lease: time.Duration(start.LeaseMs) * time.Millisecond}
	for _, q := range start.Queues {
		req.Queues = append(req.Queues, Queue{Name: q.Name, Weight: int(q.Weight)})
	}
	prefetch := int(start.Prefetch)
	if prefetch <= 0 {
		prefetch = DefaultPrefetch
	}

	ctx, cancel := context.WithCancel(gs.Context())
	defer cancel()
	st, err := b.Listen(ctx, req)
	if err != nil {
		return toStatus(err)
	}
	if err := gs.SendHeader(metadata.Pairs(listenReadyKey, "1")); err != nil {
		_ = st.Close()
		return err
	}

	l := &listenSession{gs: gs, st: st, credit: newCreditWindow(prefetch), maxSize: s.srv.maxSize, logger: s.srv.logger}
	delivered := make(chan error, 1)
	go func() { delivered <- l.deliver(ctx) }()
	read := make(chan error, 1)
	go func() { read <- l.readHost(ctx) }()

	select {
	case err := <-read:
		// The host closed its side (or went away): stop delivering, then
		// close the broker's stream so unsettled deliveries go back.
		cancel()
		select {
		case <-delivered:
		case <-time.After(streamCloseTimeout):
			s.srv.logger.Warn("delivery loop did not stop in time; closing the stream anyway")
		}
		_ = st.Close()
		if err == io.EOF {
			return nil
		}
		return err
	case err := <-delivered:
		cancel()
		// readHost is blocked in gs.Recv until this handler returns; close
		// the broker stream once it has applied what it was applying.
		go func() {
			<-read
			_ = st.Close()
		}()
		return err
	}
}

// listenSession is the plugin side of one delivery stream.
type listenSession struct {
	gs      pluginv1.Broker_ListenServer
	st      Stream
	credit  *creditWindow
	maxSize int
	logger  hclog.Logger

	sendMu sync.Mutex // gRPC streams allow one sender at a time
}

func (l *listenSession) send(resp *pluginv1.ListenResponse) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	return l.gs.Send(resp)
}

// deliver receives from the broker while there is credit and sends the
// deliveries to the host in batches that fit the message size limit.
func (l *listenSession) deliver(ctx context.Context) error {
	for {
		n, err := l.credit.wait(ctx)
		if err != nil {
			return nil
		}
		ds, err := l.st.Recv(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return toStatus(fmt.Errorf("broker stream: %w", err))
		}
		batch := make([]*pluginv1.Delivery, 0, len(ds))
		for _, d := range ds {
			if len(d.Body) > l.maxSize {
				// A body over the limit cannot cross the boundary; redelivering
				// it would loop forever, so it goes to the dead-letter store.
				reason := tooLarge("delivery "+d.ID, len(d.Body), l.maxSize).Error()
				l.logger.Error("dead-lettering a delivery over the message size limit", "delivery", d.ID, "size", len(d.Body), "limit", l.maxSize)
				if err := l.st.Settle(ctx, []Settlement{{DeliveryID: d.ID, Kind: SettleDeadLetter, Reason: reason}}); err != nil {
					l.logger.Error("dead-lettering an oversize delivery failed", "delivery", d.ID, "error", err)
				}
				continue
			}
			pd := &pluginv1.Delivery{Id: d.ID, Body: d.Body, Queue: d.Queue, Attempt: int32(d.Attempt)}
			if !d.LeaseDeadline.IsZero() {
				pd.LeaseDeadlineUnixMs = d.LeaseDeadline.UnixMilli()
			}
			batch = append(batch, pd)
		}
		if len(batch) == 0 {
			continue
		}
		l.credit.take(len(batch))
		for _, chunk := range chunkBySize(batch, l.maxSize, func(d *pluginv1.Delivery) int { return len(d.Body) + len(d.Id) + len(d.Queue) }) {
			if err := l.send(&pluginv1.ListenResponse{Deliveries: chunk}); err != nil {
				return err
			}
		}
	}
}

// readHost applies the host's settlements and credit until the host closes
// its side (io.EOF) or the stream breaks.
func (l *listenSession) readHost(ctx context.Context) error {
	// Settlements are applied by one goroutine that merges every batch that
	// arrived while the previous one was being applied: under load that is
	// one broker round trip for many host messages, not one each.
	pending := make(chan settleBatch, 1024)
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		l.applySettlements(ctx, pending)
	}()
	defer func() { close(pending); <-applied }()
	for {
		m, err := l.gs.Recv()
		if err != nil {
			return err
		}
		switch x := m.Msg.(type) {
		case *pluginv1.ListenRequest_Settle:
			b := settleBatch{ss: make([]Settlement, len(x.Settle.Settlements))}
			for i, p := range x.Settle.Settlements {
				b.ss[i] = Settlement{
					DeliveryID: p.DeliveryId, Kind: SettleKind(p.Kind),
					Delay: time.Duration(p.DelayMs) * time.Millisecond, Reason: p.Reason,
				}
				if p.Credit {
					b.credits++
				}
			}
			pending <- b
		case *pluginv1.ListenRequest_Credit:
			l.credit.add(int(x.Credit.N))
		case *pluginv1.ListenRequest_Start:
			if err := l.send(&pluginv1.ListenResponse{Error: "ignored a second start message on a Listen stream"}); err != nil {
				return err
			}
		}
	}
}

// settleBatch is one Settle message from the host.
type settleBatch struct {
	ss      []Settlement
	credits int
}

// applySettlements applies batches in arrival order, merging those already
// waiting, until pending is closed.
func (l *listenSession) applySettlements(ctx context.Context, pending <-chan settleBatch) {
	for b := range pending {
		merged := b
	more:
		for {
			select {
			case next, ok := <-pending:
				if !ok {
					break more
				}
				merged.ss = append(merged.ss, next.ss...)
				merged.credits += next.credits
			default:
				break more
			}
		}
		// Settlements the host sent are applied even if the host goes away
		// meanwhile: a lost ack would make the broker redeliver.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		err := l.st.Settle(sctx, merged.ss)
		cancel()
		// The host considers these deliveries finished whatever the broker
		// said, so their credit comes back either way.
		l.credit.add(merged.credits)
		if err != nil {
			if serr := l.send(&pluginv1.ListenResponse{Error: err.Error()}); serr != nil {
				l.logger.Warn("cannot report a settle failure to the host", "error", err, "send_error", serr)
			}
		}
	}
}

// creditWindow counts how many more deliveries the host accepts.
type creditWindow struct {
	mu   sync.Mutex
	n    int
	wake chan struct{}
	// batch is the credit worth one broker read: under load, credit comes
	// back one settlement at a time, and reading as soon as any is there
	// would cost a broker round trip per message.
	batch int
}

// settleTimeout bounds applying one batch of settlements.
const settleTimeout = 30 * time.Second

// creditLinger is how long wait holds a small credit for more to arrive.
const creditLinger = time.Millisecond

func newCreditWindow(n int) *creditWindow {
	return &creditWindow{n: n, wake: make(chan struct{}, 1), batch: max(1, n/4)}
}

func (c *creditWindow) add(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *creditWindow) take(n int) {
	c.mu.Lock()
	c.n -= n
	c.mu.Unlock()
}

// wait blocks until there is credit and returns it. A credit smaller than a
// batch is held up to creditLinger for more to come back, so a busy stream
// reads in batches while an idle one is answered at once.
func (c *creditWindow) wait(ctx context.Context) (int, error) {
	var linger *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	for {
		c.mu.Lock()
		n := c.n
		c.mu.Unlock()
		if n >= c.batch {
			return n, nil
		}
		var expired <-chan time.Time
		if n > 0 {
			if linger == nil {
				linger = time.NewTimer(creditLinger)
			}
			expired = linger.C
		}
		select {
		case <-c.wake:
		case <-expired:
			return n, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// ---- host side ----

// remoteBroker is a Broker served by a plugin process.
type remoteBroker struct {
	c   *Client
	rpc pluginv1.BrokerClient
}

// Kick sends the batch in one request, or in several when the bodies
// together would exceed the message size limit.
func (b *remoteBroker) Kick(ctx context.Context, msgs []Outgoing) error {
	out := make([]*pluginv1.Outgoing, len(msgs))
	for i, m := range msgs {
		if len(m.Body) > b.c.maxSize {
			return tooLarge(fmt.Sprintf("message %s (task %s)", m.TaskID, m.TaskName), len(m.Body), b.c.maxSize)
		}
		out[i] = &pluginv1.Outgoing{
			TaskId: m.TaskID, TaskName: m.TaskName, Body: m.Body, Queue: m.Queue,
			DelayMs: m.Delay.Milliseconds(), Priority: int32(m.Priority),
		}
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
	start := &pluginv1.ListenStart{
		StrictPriority: req.StrictPriority,
		Prefetch:       int32(prefetch),
		LeaseMs:        req.Lease.Milliseconds(),
	}
	for _, q := range req.Queues {
		start.Queues = append(start.Queues, &pluginv1.Queue{Name: q.Name, Weight: int32(q.Weight)})
	}
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
	}
	go s.run()
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
}

func (s *remoteStream) run() {
	defer close(s.done)
	for {
		resp, err := s.gs.Recv()
		if err != nil {
			s.err = s.streamErr(err)
			return
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
			ds[i] = Delivery{ID: d.Id, Body: d.Body, Queue: d.Queue, Attempt: int(d.Attempt)}
			if d.LeaseDeadlineUnixMs != 0 {
				ds[i].LeaseDeadline = time.UnixMilli(d.LeaseDeadlineUnixMs)
			}
		}
		select {
		case s.batches <- ds:
		case <-s.ctx.Done():
			s.err = s.streamErr(s.ctx.Err())
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
		msg.Settlements[i] = &pluginv1.Settlement{
			DeliveryId: x.DeliveryID, Kind: pluginv1.Settlement_Kind(x.Kind),
			DelayMs: x.Delay.Milliseconds(), Reason: x.Reason,
			Credit: x.Kind != SettleExtend,
		}
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
	err := s.gs.Send(&pluginv1.ListenRequest{Msg: &pluginv1.ListenRequest_Settle{Settle: msg}})
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
	_ Broker                = (*remoteBroker)(nil)
	_ Stream                = (*remoteStream)(nil)
	_ pluginv1.BrokerServer = (*brokerServer)(nil)
	_ pluginv1.PluginServer = (*baseServer)(nil)
)
