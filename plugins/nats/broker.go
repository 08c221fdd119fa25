package taskiqnats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// broker is the JetStream broker: one connection, the queue stream, its
// delay and dead-letter streams, and a durable pull consumer per queue.
type broker struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	conn connOptions
	opts brokerOptions
	log  hclog.Logger
	// now is the clock of due times and lease deadlines; tests replace it.
	now func() time.Time

	// streams caches the stream infos looked up or created, by name.
	streamMu sync.Mutex
	streams  map[string]*jetstream.StreamInfo

	mu        sync.Mutex
	closed    bool
	listeners map[*listener]struct{}
}

func newBroker(_ context.Context, cfg sdk.Config) (*broker, error) {
	conn, opts, err := decodeBrokerConfig(cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	nc, js, err := connect(conn, log)
	if err != nil {
		return nil, err
	}
	return &broker{nc: nc, js: js, conn: conn, opts: opts, log: log, now: time.Now,
		streams: map[string]*jetstream.StreamInfo{}, listeners: map[*listener]struct{}{}}, nil
}

// capabilities of the broker; dedup only when Nats-Msg-Id is set.
func (b *broker) Capabilities() []string {
	caps := []string{sdk.CapAckable, sdk.CapLease, sdk.CapDelay, sdk.CapDeadLetter, sdk.CapRouting, sdk.CapStableIDs}
	if b.opts.dedup {
		caps = append(caps, sdk.CapDedup)
	}
	return caps
}

func (b *broker) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.conn.requestTimeout)
}

func (b *broker) wrap(op string, err error) error { return wrapErr(op, b.conn, b.nc, err) }

// ensureStream looks the stream up, or creates it with cfg when missing. An
// existing stream is never changed: its configuration is the user's (or a
// Python taskiq-nats worker's), and subjects it lacks are reported by the
// callers that need them.
func (b *broker) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) (*jetstream.StreamInfo, error) {
	if b.opts.memory {
		cfg.Storage = jetstream.MemoryStorage
	}
	b.streamMu.Lock()
	defer b.streamMu.Unlock()
	if info, ok := b.streams[cfg.Name]; ok {
		return info, nil
	}
	ctx, cancel := b.reqCtx(ctx)
	defer cancel()
	s, err := b.js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = b.js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = b.js.Stream(ctx, cfg.Name) // another process created it first
		}
		if err == nil {
			b.log.Info("created stream", "stream", cfg.Name, "subjects", cfg.Subjects, "retention", cfg.Retention.String())
		}
	}
	if err != nil {
		return nil, b.wrap("stream "+cfg.Name, err)
	}
	info := s.CachedInfo()
	b.streams[cfg.Name] = info
	return info, nil
}

func (b *broker) mainStream(ctx context.Context) (*jetstream.StreamInfo, error) {
	retention := jetstream.LimitsPolicy
	if b.opts.workQueue {
		retention = jetstream.WorkQueuePolicy
	}
	return b.ensureStream(ctx, jetstream.StreamConfig{Name: b.opts.stream, Retention: retention, MaxAge: b.opts.maxAge,
		Subjects: []string{b.opts.subject, b.opts.subject + ".>"}})
}

func (b *broker) delayStream(ctx context.Context) (*jetstream.StreamInfo, error) {
	return b.ensureStream(ctx, jetstream.StreamConfig{Name: b.opts.delayStream, Retention: jetstream.WorkQueuePolicy,
		Subjects: []string{b.opts.delaySubject()}})
}

func (b *broker) deadStream(ctx context.Context) (*jetstream.StreamInfo, error) {
	return b.ensureStream(ctx, jetstream.StreamConfig{Name: b.opts.deadStream, Retention: jetstream.LimitsPolicy,
		MaxAge: b.opts.deadMaxAge, Subjects: []string{b.opts.deadSubject()}})
}

// checkCovered fails when the stream does not take subject: an existing
// stream made by taskiq-nats holds only the default subject.
func checkCovered(info *jetstream.StreamInfo, subject, queue string) error {
	if covered(info.Config.Subjects, subject) {
		return nil
	}
	return fmt.Errorf("stream %s (subjects %v) does not take subject %s of queue %q; add \"%s\" to the stream's subjects (nats stream edit), or kick to the default queue: %w",
		info.Config.Name, info.Config.Subjects, subject, queue, subject, sdk.ErrUnsupported)
}

// Kick publishes the batch asynchronously and waits for every
// acknowledgement: one round trip for the whole batch. Delayed messages go
// to the delay stream with their due time and target subject in headers.
func (b *broker) Kick(ctx context.Context, msgs []sdk.Outgoing) error {
	if b.isClosed() {
		return fmt.Errorf("nats kick: %w", sdk.ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	info, err := b.mainStream(ctx)
	if err != nil {
		return err
	}
	now := b.now()
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		if err := validQueue(m.Queue); err != nil {
			return fmt.Errorf("nats kick: task %s: %w", m.TaskID, err)
		}
		if limit := b.nc.MaxPayload(); limit > 0 && int64(len(m.Body)) > limit {
			return fmt.Errorf("nats kick: task %s: its message of %d bytes is larger than the NATS server's max_payload (%d bytes): raise max_payload in the server's configuration, or lower the host's max_message_size to it: %w",
				m.TaskID, len(m.Body), limit, sdk.ErrMessageTooLarge)
		}
		subject := b.opts.queueSubject(m.Queue)
		if err := checkCovered(info, subject, m.Queue); err != nil {
			return fmt.Errorf("nats kick: task %s: %w", m.TaskID, err)
		}
		nm := &nats.Msg{Subject: subject, Data: m.Body}
		if m.Delay > 0 {
			if _, err := b.delayStream(ctx); err != nil {
				return err
			}
			nm.Subject = b.opts.delaySubject()
			nm.Header = nats.Header{}
			nm.Header.Set(hdrTarget, subject)
			nm.Header.Set(hdrDue, strconv.FormatInt(now.Add(m.Delay).UnixMilli(), 10))
		}
		var opts []jetstream.PublishOpt
		if id := msgID(m); b.opts.dedup && m.DedupWindow > 0 && id != "" {
			opts = append(opts, jetstream.WithMsgID(id))
		}
		f, err := b.js.PublishMsgAsync(nm, opts...)
		if err != nil {
			return b.wrap("kick", err)
		}
		futures = append(futures, f)
	}
	return b.awaitAcks(ctx, "kick", futures)
}

// awaitAcks waits for the publish acknowledgements of futures.
func (b *broker) awaitAcks(ctx context.Context, op string, futures []jetstream.PubAckFuture) error {
	timer := time.NewTimer(b.conn.requestTimeout)
	defer timer.Stop()
	var errs []error
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, err)
		case <-ctx.Done():
			return b.wrap(op, ctx.Err())
		case <-timer.C:
			return b.wrap(op, fmt.Errorf("no publish acknowledgement within request_timeout %s: %w", b.conn.requestTimeout, nats.ErrTimeout))
		}
	}
	if len(errs) > 0 {
		return b.wrap(op, fmt.Errorf("%d of %d messages not stored: %w", len(errs), len(futures), errors.Join(errs...)))
	}
	return nil
}

// Listen opens a delivery stream over the durable consumers of the queues.
func (b *broker) Listen(ctx context.Context, req sdk.ListenRequest) (sdk.Stream, error) {
	if b.isClosed() {
		return nil, fmt.Errorf("nats listen: %w", sdk.ErrClosed)
	}
	l, err := newListener(ctx, b, req)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		_ = l.Close()
		return nil, fmt.Errorf("nats listen: %w", sdk.ErrClosed)
	}
	b.listeners[l] = struct{}{}
	return l, nil
}

// consumer looks up the durable consumer of a queue, or creates it: explicit
// acks, ack_wait as the lease, no server-side delivery limit (max_deliver is
// enforced by the plugin, which dead-letters instead of dropping).
func (b *broker) consumer(ctx context.Context, stream, name, filter string, ackWait time.Duration) (jetstream.Consumer, error) {
	ctx, cancel := b.reqCtx(ctx)
	defer cancel()
	c, err := b.js.Consumer(ctx, stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = b.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: ackWait, MaxDeliver: -1, MaxAckPending: -1, DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		if errors.Is(err, jetstream.ErrConsumerExists) {
			c, err = b.js.Consumer(ctx, stream, name)
		}
	}
	if err != nil {
		return nil, b.wrap(fmt.Sprintf("consumer %s on stream %s", name, stream), err)
	}
	return c, nil
}

func (b *broker) forget(l *listener) {
	b.mu.Lock()
	delete(b.listeners, l)
	b.mu.Unlock()
}

func (b *broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close closes every stream (their unsettled deliveries are nacked), waits
// for pending publishes, and closes the connection.
func (b *broker) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	ls := make([]*listener, 0, len(b.listeners))
	for l := range b.listeners {
		ls = append(ls, l)
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() { _ = l.Close() })
	}
	wg.Wait()
	select {
	case <-b.js.PublishAsyncComplete():
	case <-ctx.Done():
	case <-time.After(b.conn.requestTimeout):
	}
	_ = b.nc.FlushTimeout(time.Second)
	b.nc.Close()
	return nil
}

// deadLetter stores a copy of body in the dead-letter stream with the
// reason, and waits for the acknowledgement.
func (b *broker) deadLetter(ctx context.Context, queue string, body []byte, seq uint64, attempt int, reason string) error {
	if _, err := b.deadStream(ctx); err != nil {
		return err
	}
	nm := &nats.Msg{Subject: b.opts.deadSubject(), Data: body, Header: nats.Header{}}
	nm.Header.Set(hdrReason, reason)
	nm.Header.Set(hdrQueue, queue)
	nm.Header.Set(hdrAttempt, strconv.Itoa(attempt))
	nm.Header.Set(hdrFailedAt, strconv.FormatInt(b.now().UnixMilli(), 10))
	nm.Header.Set(hdrSeq, strconv.FormatUint(seq, 10))
	ctx, cancel := b.reqCtx(ctx)
	defer cancel()
	if _, err := b.js.PublishMsg(ctx, nm); err != nil {
		return b.wrap("dead letter", err)
	}
	b.log.Warn("message moved to dead-letter stream", "queue", queue, "dead_letter_stream", b.opts.deadStream,
		"stream_seq", seq, "attempt", attempt, "reason", reason)
	return nil
}

// Interface guards
var (
	_ sdk.Broker  = (*broker)(nil)
	_ sdk.Capable = (*broker)(nil)
)
