package sdk

import (
	"context"
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
		msgs[i] = outgoingFromProto(m)
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
	req := listenRequestFromProto(start)
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
	if g, ok := st.(LeaseGranter); ok {
		if lease := g.GrantedLease(); lease > 0 {
			if err := l.send(&pluginv1.ListenResponse{GrantedLeaseMs: lease.Milliseconds()}); err != nil {
				_ = st.Close()
				return err
			}
		}
	}
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
			batch = append(batch, deliveryToProto(d))
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
			b := settleBatch{ss: make([]Settlement, len(x.Settle.Settlements)), seq: x.Settle.Seq}
			for i, p := range x.Settle.Settlements {
				b.ss[i] = settlementFromProto(p)
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
	seq     uint64 // the host's number for the message; 0: no answer wanted
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
				merged.seq = max(merged.seq, next.seq)
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
		// A host that numbers its messages learns which were applied: it
		// keeps the others to send again if this process dies.
		if err != nil || merged.seq > 0 {
			resp := &pluginv1.ListenResponse{AppliedSeq: merged.seq}
			if err != nil {
				resp.Error = err.Error()
			}
			if serr := l.send(resp); serr != nil {
				l.logger.Warn("cannot report applied settlements to the host", "error", err, "send_error", serr)
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

// Interface guards
var (
	_ pluginv1.BrokerServer = (*brokerServer)(nil)
)
