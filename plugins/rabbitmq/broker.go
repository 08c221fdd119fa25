package taskiqrabbitmq

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskiq-go/taskiq/internal/backoff"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Message headers this plugin writes. task_id and task_name are those of
// taskiq-aio-pika; the others are read back by this plugin only.
const (
	headerTaskID     = "task_id"
	headerTaskName   = "task_name"
	headerAttempt    = "x-taskiq-attempt"
	headerDeadReason = "x-taskiq-dead-letter-reason"
	headerDeadQueue  = "x-taskiq-dead-letter-queue"
	headerDeadAt     = "x-taskiq-dead-lettered-at"
	// headerDeliveryCount is set by quorum queues on a redelivery.
	headerDeliveryCount = "x-delivery-count"
)

// broker is the RabbitMQ broker: one connection (redialled when it drops),
// one confirm-mode channel for publishing and one channel per delivery
// stream.
type broker struct {
	o   options
	log hclog.Logger

	mu      sync.Mutex
	conn    *amqp.Connection // nil while redialling
	gen     uint64           // counts connections
	ready   chan struct{}    // closed while conn is usable
	closed  bool
	streams map[*stream]struct{}
	// declared lists the queues declared on the current connection.
	declared map[string]bool
	// buckets holds when each delay bucket queue was last declared.
	buckets map[string]time.Time

	topo topology

	pubMu sync.Mutex
	pub   *amqp.Channel // confirm mode; nil until (re)opened
	pubOf uint64        // the connection generation pub belongs to

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

func newBroker(ctx context.Context, cfg sdk.Config) (*broker, error) {
	o, err := decodeConfig(cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	b := &broker{o: o, log: log, ready: make(chan struct{}), streams: map[*stream]struct{}{},
		declared: map[string]bool{}, buckets: map[string]time.Time{}, done: make(chan struct{})}
	conn, err := b.dial()
	if err != nil {
		return nil, err
	}
	topo, err := b.declareTopology(conn)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	b.setConn(conn, topo)
	b.wg.Add(1)
	go b.supervise()
	return b, nil
}

// tlsConfig is a copy of the configured TLS settings for one dial (the
// client sets its ServerName from the url on it), or nil.
func (b *broker) tlsConfig() *tls.Config {
	if b.o.tls == nil {
		return nil
	}
	return b.o.tls.Clone()
}

func (b *broker) dial() (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	host, _ := os.Hostname()
	props.SetClientConnectionName(fmt.Sprintf("taskiq-rabbitmq %s pid %d", host, os.Getpid()))
	conn, err := amqp.DialConfig(b.o.url, amqp.Config{Heartbeat: 10 * time.Second, Properties: props, Dial: amqp.DefaultDial(5 * time.Second), TLSClientConfig: b.tlsConfig()})
	if err != nil {
		if isCode(err, amqp.AccessRefused) || errors.Is(err, amqp.ErrCredentials) {
			return nil, fmt.Errorf("rabbitmq at %s: %w: %w (check the user and password of url)", b.o.addr, sdk.ErrUnauthenticated, err)
		}
		return nil, fmt.Errorf("rabbitmq at %s: %w (%s %w)", b.o.addr, sdk.ErrUnavailable, dialHint(err, strings.HasPrefix(b.o.url, "amqps:")), err)
	}
	return conn, nil
}

// dialHint says what to check after a failed dial: the TLS attributes when
// the TLS handshake failed on either side, else whether the server is
// there.
func dialHint(err error, amqps bool) string {
	var verify *tls.CertificateVerificationError
	msg := err.Error()
	switch {
	case errors.As(err, &verify):
		return "the server's certificate is not trusted: set tls_ca_file to the CA that signed it;"
	case strings.Contains(msg, "tls: certificate required"), strings.Contains(msg, "tls: bad certificate"),
		strings.Contains(msg, "tls: unknown certificate authority"):
		return "the server refused the client certificate: set tls_cert_file and tls_key_file to one it trusts;"
	case !amqps:
		return "is RabbitMQ running and reachable? If this port speaks TLS, write the url as amqps://;"
	}
	return "is RabbitMQ running and reachable?"
}

// topology is what declaring the fixed entities found on the server.
type topology struct {
	exchangeKind string
	defaultQueue queueSpec // as declared (adopted arguments included)
}

// declareTopology declares the exchange, the dead-letter queue, Python's
// delay queue when the layout has one, and the default queue.
func (b *broker) declareTopology(conn *amqp.Connection) (topology, error) {
	var t topology
	kind, err := declareExchange(conn, b.o.exchange, b.o.compat != compat05)
	if err != nil {
		return t, err
	}
	t.exchangeKind = kind
	if _, err := declareQueue(conn, deadLetterSpec(b.o)); err != nil {
		return t, err
	}
	if b.o.delayQueue != "" {
		if _, err := declareQueue(conn, pythonDelaySpec(b.o)); err != nil {
			return t, err
		}
	}
	spec, err := b.declareTaskQueue(conn, b.o.queue)
	if err != nil {
		return t, err
	}
	t.defaultQueue = spec
	if spec.queueType() != b.o.queueType || spec.maxPriority() != b.o.maxPriority {
		b.log.Info("queue exists with other arguments; using them", "queue", spec.name,
			"type", spec.queueType(), "max_priority", spec.maxPriority())
	}
	return t, nil
}

// declareTaskQueue declares a task queue and binds it to the exchange: by
// its own name, or with "#" for the default queue of aio-pika-0.5 (whose
// other queues are reached through the default exchange).
func (b *broker) declareTaskQueue(conn *amqp.Connection, name string) (queueSpec, error) {
	spec, err := declareQueue(conn, taskQueueSpec(b.o, name))
	if err != nil {
		return spec, err
	}
	key := name
	if b.o.compat == compat05 {
		if name != b.o.queue {
			return spec, nil
		}
		key = "#"
	}
	ch, err := conn.Channel()
	if err != nil {
		return spec, err
	}
	defer ch.Close()
	if err := ch.QueueBind(name, key, b.o.exchange, false, nil); err != nil {
		return spec, fmt.Errorf("bind queue %q to exchange %q: %w", name, b.o.exchange, err)
	}
	return spec, nil
}

// setConn makes conn the current connection; false when the broker is
// closed.
func (b *broker) setConn(conn *amqp.Connection, topo topology) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.conn = conn
	b.topo = topo
	b.gen++
	b.declared = map[string]bool{b.o.queue: true}
	b.buckets = map[string]time.Time{}
	close(b.ready)
	return true
}

// supervise redials the connection when it drops, until Close.
func (b *broker) supervise() {
	defer b.wg.Done()
	ctx := contextOf(b.done)
	for {
		b.mu.Lock()
		conn := b.conn
		b.mu.Unlock()
		lost := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-b.done:
			return
		case err := <-lost:
			b.log.Warn("connection to RabbitMQ lost; reconnecting", "addr", b.o.addr, "error", err)
		}
		b.mu.Lock()
		b.conn = nil
		b.ready = make(chan struct{})
		b.mu.Unlock()
		bo := backoff.New(50*time.Millisecond, 2*time.Second)
		for {
			if !bo.Wait(ctx) {
				return
			}
			conn, err := b.dial()
			var topo topology
			if err == nil {
				if topo, err = b.declareTopology(conn); err != nil {
					_ = conn.Close()
				}
			}
			if err != nil {
				b.log.Warn("reconnecting to RabbitMQ", "addr", b.o.addr, "error", err)
				continue
			}
			if !b.setConn(conn, topo) { // closed while redialling
				_ = conn.Close()
				return
			}
			b.log.Info("reconnected to RabbitMQ", "addr", b.o.addr)
			break
		}
	}
}

// contextOf returns a context that ends when done is closed.
func contextOf(done <-chan struct{}) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-done:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx
}

// connection returns the current connection and its generation, waiting
// for a redial until ctx ends.
func (b *broker) connection(ctx context.Context) (*amqp.Connection, uint64, error) {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, 0, sdk.ErrClosed
		}
		if b.conn != nil && !b.conn.IsClosed() {
			conn, gen := b.conn, b.gen
			b.mu.Unlock()
			return conn, gen, nil
		}
		ready := b.ready
		b.mu.Unlock()
		select {
		case <-ready:
		case <-b.done:
			return nil, 0, sdk.ErrClosed
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("rabbitmq at %s: %w: not connected (%w)", b.o.addr, sdk.ErrUnavailable, ctx.Err())
		}
	}
}

// ensureQueue declares a task queue once per connection.
func (b *broker) ensureQueue(conn *amqp.Connection, gen uint64, name string) error {
	b.mu.Lock()
	ok := b.gen == gen && b.declared[name]
	b.mu.Unlock()
	if ok {
		return nil
	}
	if _, err := b.declareTaskQueue(conn, name); err != nil {
		return err
	}
	b.mu.Lock()
	if b.gen == gen {
		b.declared[name] = true
	}
	b.mu.Unlock()
	return nil
}

// ensureBucket declares the delay bucket of ms feeding target unless it
// was declared recently enough; it returns the bucket queue's name.
func (b *broker) ensureBucket(conn *amqp.Connection, gen uint64, target string, ms int64) (string, error) {
	spec := bucketSpec(target, ms)
	b.mu.Lock()
	at, ok := b.buckets[spec.name]
	fresh := ok && b.gen == gen && time.Since(at) < bucketRedeclareAfter(ms)
	b.mu.Unlock()
	if fresh {
		return spec.name, nil
	}
	now := time.Now()
	if _, err := declareQueue(conn, spec); err != nil {
		return "", err
	}
	b.mu.Lock()
	if b.gen == gen {
		b.buckets[spec.name] = now
	}
	b.mu.Unlock()
	return spec.name, nil
}

// outgoing is one message ready to publish.
type outgoing struct {
	exchange, key string
	msg           amqp.Publishing
}

// route turns a kicked message into a publishing: to the exchange with the
// queue's routing key (the task name for the default queue of
// aio-pika-0.5), or into a delay bucket.
func (b *broker) route(conn *amqp.Connection, gen uint64, m sdk.Outgoing) (outgoing, error) {
	q := m.Queue
	if q == "" {
		q = b.o.queue
	}
	if err := b.ensureQueue(conn, gen, q); err != nil {
		return outgoing{}, err
	}
	p := amqp.Publishing{
		Headers:      amqp.Table{headerTaskID: m.TaskID, headerTaskName: m.TaskName},
		DeliveryMode: amqp.Persistent,
		MessageId:    m.TaskID,
		Body:         m.Body,
	}
	b.mu.Lock()
	exchangeKind := b.topo.exchangeKind
	b.mu.Unlock()
	if m.Priority > 0 {
		p.Priority = uint8(min(m.Priority, 255))
	}
	if m.Delay > 0 {
		bucket, err := b.ensureBucket(conn, gen, q, bucketOf(m.Delay))
		if err != nil {
			return outgoing{}, err
		}
		return outgoing{exchange: "", key: bucket, msg: p}, nil
	}
	switch {
	case b.o.compat != compat05:
		return outgoing{exchange: b.o.exchange, key: q, msg: p}, nil
	case q != b.o.queue:
		return outgoing{exchange: "", key: q, msg: p}, nil
	case exchangeKind == amqp.ExchangeDirect:
		return outgoing{exchange: b.o.exchange, key: "#", msg: p}, nil
	default:
		return outgoing{exchange: b.o.exchange, key: m.TaskName, msg: p}, nil
	}
}

// Kick publishes the batch and waits for the server's confirms of all of
// it: the messages are on disk (durable queues) when it returns nil.
func (b *broker) Kick(ctx context.Context, msgs []sdk.Outgoing) error {
	ctx, cancel := context.WithTimeout(ctx, b.o.publishTimeout)
	defer cancel()
	conn, gen, err := b.connection(ctx)
	if err != nil {
		return err
	}
	out := make([]outgoing, 0, len(msgs))
	for _, m := range msgs {
		o, err := b.route(conn, gen, m)
		if err != nil {
			return b.wrap("kick", err)
		}
		out = append(out, o)
	}
	return b.publish(ctx, out)
}

// publish sends a batch on the confirm-mode channel and waits for every
// confirm. A batch is one round trip however large it is.
func (b *broker) publish(ctx context.Context, out []outgoing) error {
	b.pubMu.Lock()
	ch, err := b.publisher(ctx)
	if err != nil {
		b.pubMu.Unlock()
		return err
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(out))
	for _, o := range out {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, o.exchange, o.key, false, false, o.msg)
		if err != nil {
			b.pub = nil
			b.pubMu.Unlock()
			return b.wrap("publish", err)
		}
		confirms = append(confirms, dc)
	}
	b.pubMu.Unlock()
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("rabbitmq at %s: publish: no confirm from the server: %w: %w", b.o.addr, sdk.ErrUnavailable, err)
		}
		if !ok {
			return fmt.Errorf("rabbitmq at %s: publish: the server did not confirm the message (nack, or the channel closed): %w", b.o.addr, sdk.ErrUnavailable)
		}
	}
	return nil
}

// publisher returns the confirm-mode channel, opening it on the current
// connection when needed. b.pubMu is held.
func (b *broker) publisher(ctx context.Context) (*amqp.Channel, error) {
	conn, gen, err := b.connection(ctx)
	if err != nil {
		return nil, err
	}
	if b.pub != nil && b.pubOf == gen && !b.pub.IsClosed() {
		return b.pub, nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, b.wrap("open channel", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, b.wrap("confirm mode", err)
	}
	b.pub, b.pubOf = ch, gen
	return ch, nil
}

// wrap marks connection failures with sdk.ErrUnavailable.
func (b *broker) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *sdk.ConfigError
	if errors.As(err, &ce) || errors.Is(err, sdk.ErrClosed) || errors.Is(err, sdk.ErrUnavailable) {
		return err
	}
	if errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("rabbitmq at %s: %s: %w: %w", b.o.addr, op, sdk.ErrUnavailable, err)
	}
	return fmt.Errorf("rabbitmq at %s: %s: %w", b.o.addr, op, err)
}

// Capabilities reports what the configured broker implements: priorities
// only on a classic queue with x-max-priority (RabbitMQ 3.x quorum queues
// have none).
func (b *broker) Capabilities() []string {
	b.mu.Lock()
	q := b.topo.defaultQueue
	b.mu.Unlock()
	caps := append([]string{}, Capabilities...)
	if q.queueType() == queueClassic && q.maxPriority() > 0 {
		caps = append(caps, sdk.CapPriority)
	}
	return caps
}

// Close ends every stream (their unsettled deliveries go back to their
// queues) and the connection.
func (b *broker) Close(context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	streams := make([]*stream, 0, len(b.streams))
	for s := range b.streams {
		streams = append(streams, s)
	}
	conn := b.conn
	b.mu.Unlock()
	for _, s := range streams {
		_ = s.Close()
	}
	close(b.done)
	if conn != nil {
		_ = conn.Close()
	}
	b.wg.Wait()
	return nil
}
