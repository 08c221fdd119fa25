package conformance

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// DeadLetter is one entry of a broker's dead-letter store, as the
// launcher's reader (WithDeadLetters) finds it.
type DeadLetter struct {
	// Body is the message as it was kicked, byte for byte.
	Body []byte
	// Reason is why it was dead-lettered.
	Reason string
}

// WithDeadLetters gives the suite a way to read the dead-letter store of a
// broker it launched: read returns what b's dead-letter store holds for
// queue ("" is the broker's default queue). The suite then checks that a
// dead letter keeps the original bytes and the reason (DeadLetterContents)
// and, with WithMaxAttempts, the reason of a message that used up its
// attempts.
func WithDeadLetters(read func(t *testing.T, b sdk.Broker, queue string) []DeadLetter) Option {
	return func(o *options) { o.deadLetters = read }
}

// WithMaxAttempts says the launcher configured the broker to deliver one
// message at most n times (its max_attempts option); the suite checks that a
// message nacked n times is not delivered again (MaxAttempts).
func WithMaxAttempts(n int) Option { return func(o *options) { o.maxAttempts = n } }

// WithRestart gives the suite a way to restart a broker's plugin process:
// restart kills the process behind b (sdk.Client.Kill) and returns a broker
// served by a new process configured the same way, on the same backing
// store and default queue. With it, a broker claiming sdk.CapStableIDs is
// checked to accept, on the new process, settlements of deliveries the dead
// one handed out (SettlementsAfterRestart).
func WithRestart(restart func(t *testing.T, b sdk.Broker) sdk.Broker) Option {
	return func(o *options) { o.restart = restart }
}

// runMore registers the subtests of this file.
func (s *brokerSuite) runMore(t *testing.T) {
	s.run(t, "DeadLetterContents", []string{sdk.CapDeadLetter}, s.deadLetterContents)
	s.run(t, "MaxAttempts", nil, s.maxAttempts)
	s.run(t, "ExtendBeyondLease", []string{sdk.CapLease}, s.extendBeyondLease)
	s.run(t, "SettlementsAfterRestart", []string{sdk.CapStableIDs}, s.settlementsAfterRestart)
}

// kickOneLeased kicks one message to the default queue and receives it on
// a new stream asking for lease.
func (b *bundle) kickOneLeased(lease time.Duration) (sdk.Outgoing, sdk.Stream, sdk.Delivery) {
	b.t.Helper()
	m := b.msg("")
	b.kick(m)
	st := b.listen(sdk.ListenRequest{Lease: lease})
	d := b.recvOne(st)
	require.Equal(b.t, m.TaskID, b.mustID(d))
	return m, st, d
}

// waitDeadLetter polls the launcher's reader until a dead letter whose body
// is body appears, and returns it.
func (b *bundle) waitDeadLetter(queue string, body []byte) DeadLetter {
	b.t.Helper()
	deadline := time.Now().Add(b.o.timeout)
	for {
		for _, dl := range b.o.deadLetters(b.t, b.b, queue) {
			if string(dl.Body) == string(body) {
				return dl
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no dead letter with the original body %q appeared within %s", body, b.o.timeout)
		}
		time.Sleep(20 * time.Millisecond) // polling the launcher's store: nothing to wait on
	}
}

// deadLetterContents: a dead letter keeps the message byte for byte and the
// reason the worker gave.
func (s *brokerSuite) deadLetterContents(t *testing.T, b *bundle) {
	if b.o.deadLetters == nil {
		t.Skip("the launcher gave no way to read the dead-letter store (conformance.WithDeadLetters)")
	}
	m := b.msg("")
	b.kick(m)
	st := b.listen(sdk.ListenRequest{})
	d := b.recvOne(st)
	const reason = "conformance: reason kept with the dead letter"
	require.NoError(t, st.Settle(b.ctx(), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleDeadLetter, Reason: reason}}))
	dl := b.waitDeadLetter("", m.Body)
	require.Contains(t, dl.Reason, reason, "the dead letter carries the worker's reason")
}

// maxAttempts: a message nacked max_attempts times is not delivered again;
// with a dead-letter reader, it is in the dead-letter store, saying why.
func (s *brokerSuite) maxAttempts(t *testing.T, b *bundle) {
	n := b.o.maxAttempts
	if n <= 0 {
		t.Skip("the launcher did not say which max_attempts it configured (conformance.WithMaxAttempts)")
	}
	m := b.msg("")
	b.kick(m)
	st := b.listen(sdk.ListenRequest{})
	for i := 1; i <= n; i++ {
		d := b.recvOne(st)
		require.Equal(t, m.TaskID, b.mustID(d))
		require.Equal(t, i, d.Attempt, "delivery %d of %d", i, n)
		b.settle(st, sdk.SettleNack, d)
	}
	b.barrier(st, "", "a message nacked max_attempts times must not be delivered again")
	if b.o.deadLetters != nil && sdk.Has(b.caps, sdk.CapDeadLetter) {
		dl := b.waitDeadLetter("", m.Body)
		require.Contains(t, dl.Reason, "max_attempts", "the dead letter says the message used up its attempts")
	}
}

// extendBeyondLease: an extension asking for more than the stream's lease
// is accepted. A broker whose stream reports the lease it grants
// (sdk.LeaseGranter) keeps the message at least that long after the
// extension; one that does not is taken at its word and keeps it as long as
// asked. Either way the message comes back once nobody extends it.
func (s *brokerSuite) extendBeyondLease(t *testing.T, b *bundle) {
	lease := b.o.lease
	m, st, d := b.kickOneLeased(lease)
	ask := 3 * lease
	require.NoError(t, st.Settle(b.ctx(), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleExtend, Delay: ask}}),
		"an extension longer than the lease (%s asked, lease %s)", ask, lease)
	extended := time.Now()
	kept := ask
	if g, ok := st.(sdk.LeaseGranter); ok && g.GrantedLease() > 0 {
		kept = g.GrantedLease()
	}
	other := b.listen(sdk.ListenRequest{Lease: lease})
	got := make(chan sdk.Delivery, 2)
	ctx, cancel := context.WithTimeout(context.Background(), ask+b.o.timeout)
	done := make(chan struct{}, 2)
	defer func() { cancel(); <-done; <-done }()
	for _, s := range []sdk.Stream{st, other} {
		go func() {
			defer func() { done <- struct{}{} }()
			if ds, err := s.Recv(ctx, 1); err == nil {
				got <- ds[0]
			}
		}()
	}
	select {
	case again := <-got:
		elapsed := time.Since(extended)
		require.Equal(t, m.TaskID, b.mustID(again))
		require.GreaterOrEqual(t, elapsed, kept-timeTolerance,
			"redelivered %s after an extension that keeps it %s (asked %s, lease %s); a broker granting less than asked reports it with sdk.LeaseGranter",
			elapsed, kept, ask, lease)
		_ = other.Settle(b.ctx(), []sdk.Settlement{{DeliveryID: again.ID, Kind: sdk.SettleAck}})
		_ = st.Settle(b.ctx(), []sdk.Settlement{{DeliveryID: again.ID, Kind: sdk.SettleAck}})
	case <-ctx.Done():
		t.Fatalf("a delivery extended once (by %s) was not redelivered within %s after the extension", ask, ask+b.o.timeout)
	}
}

// settlementsAfterRestart: a broker claiming stable_ids accepts, on a
// stream of its restarted process, the settlements of deliveries handed
// out by the process that died: an ack removes the message for good, an
// extension and a nack are applied or refused without an error.
func (s *brokerSuite) settlementsAfterRestart(t *testing.T, b *bundle) {
	if b.o.restart == nil {
		t.Skip("the launcher gave no way to restart the plugin process (conformance.WithRestart)")
	}
	msgs := b.msgs("", 3)
	b.kick(msgs...)
	lease := time.Duration(0)
	if sdk.Has(b.caps, sdk.CapLease) {
		// Long enough to outlast the restart on a loaded machine: a lease
		// that expires first rightly redelivers the message to be acked.
		lease = max(b.o.lease, 5*time.Second)
	}
	st := b.listen(sdk.ListenRequest{Lease: lease})
	ds := b.recv(st, 3, 3)
	byID := map[string]sdk.Delivery{}
	for _, d := range ds {
		byID[b.mustID(d)] = d
	}
	acked, extended, nacked := byID[msgs[0].TaskID], byID[msgs[1].TaskID], byID[msgs[2].TaskID]

	b.b = b.o.restart(t, b.b)
	require.NotNil(t, b.b, "the restart function returned no broker")
	next := b.listen(sdk.ListenRequest{Lease: lease})
	err := next.Settle(b.ctx(), []sdk.Settlement{
		{DeliveryID: acked.ID, Kind: sdk.SettleAck},
		{DeliveryID: extended.ID, Kind: sdk.SettleExtend, Delay: lease},
		{DeliveryID: nacked.ID, Kind: sdk.SettleNack},
	})
	require.NoError(t, err, "settling, on the restarted process, deliveries of the one that died")
	// Whatever became of the extension and the nack, those two messages come
	// back (now or once their lease expires); the acked one never does.
	left := map[string]bool{msgs[1].TaskID: true, msgs[2].TaskID: true}
	ctx, cancel := context.WithTimeout(context.Background(), 3*lease+b.o.timeout)
	defer cancel()
	for len(left) > 0 {
		got, err := next.Recv(ctx, 10)
		require.NoError(t, err, "waiting for the extended and nacked messages to come back; still missing %v", keys(left))
		for _, d := range got {
			id := b.mustID(d)
			require.NotEqual(t, msgs[0].TaskID, id, "a message acked on the restarted process was delivered again")
			delete(left, id)
			b.settle(next, sdk.SettleAck, d)
		}
	}
	b.barrier(next, "", "the acked message must not come back")
}

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return strings.Join(out, ", ")
}
