package conformance

import (
	"testing"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Option tells a suite how the launcher configured the plugin, or tunes the
// suite itself.
type Option func(*options)

type options struct {
	lease          time.Duration
	defaultLease   time.Duration
	delay          time.Duration
	maxMessageSize int
	resultTTL      time.Duration
	timeout        time.Duration
	skips          map[string]string
	deadLetters    func(t *testing.T, b sdk.Broker, queue string) []DeadLetter
	maxAttempts    int
	restart        func(t *testing.T, b sdk.Broker) sdk.Broker
}

func newOptions(opts []Option) options {
	o := options{
		lease:          time.Second,
		delay:          time.Second,
		maxMessageSize: sdk.DefaultMaxMessageSize,
		timeout:        30 * time.Second,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithLease sets the visibility lease the broker suite asks for in
// ListenRequest.Lease in the lease subtests (default 1s). Lower it to make
// the suite faster; raise it when a slow machine extends leases late.
func WithLease(d time.Duration) Option { return func(o *options) { o.lease = d } }

// WithDefaultLease says the launcher configured the broker's default lease
// (the one a ListenRequest without Lease gets) to d; the suite then also
// checks that a delivery nobody settles comes back after it. Keep d short
// (a second or two): the subtest waits for it.
func WithDefaultLease(d time.Duration) Option { return func(o *options) { o.defaultLease = d } }

// WithDelay sets the delay the delay subtests use (default 1s). Deliveries
// must not arrive before it.
func WithDelay(d time.Duration) Option { return func(o *options) { o.delay = d } }

// WithMaxMessageSize says the launcher started the plugin with this message
// size limit (sdktest.WithMaxMessageSize); the size subtests send bodies at
// and just over it. The default is sdk.DefaultMaxMessageSize (16 MiB); a
// small limit such as 64 KiB makes the suite faster.
func WithMaxMessageSize(n int) Option { return func(o *options) { o.maxMessageSize = n } }

// WithResultTTL says the launcher configured the result backend to expire
// results and progress after d; the suite then checks that they do. Keep d
// at least a second or two: the other subtests read results right after
// storing them.
func WithResultTTL(d time.Duration) Option { return func(o *options) { o.resultTTL = d } }

// WithTimeout bounds every wait of the suite for something that must happen
// (default 30s). It is a deadline, not a sleep: passing subtests return as
// soon as the plugin delivers.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithSkip skips the named subtest (its name as printed by go test, without
// the parent's) with the given reason, for a documented limitation of the
// plugin that no capability flag expresses.
func WithSkip(subtest, reason string) Option {
	return func(o *options) {
		if o.skips == nil {
			o.skips = map[string]string{}
		}
		o.skips[subtest] = reason
	}
}

// skipUnclaimed skips subtest name when the caller skipped it by name or the
// plugin (a "broker" or "result backend", for the message) lacks a capability
// in need.
func skipUnclaimed(t *testing.T, o options, caps []string, name string, need []string, what string) {
	t.Helper()
	if reason, ok := o.skips[name]; ok {
		t.Skip(reason)
	}
	for _, c := range need {
		if !sdk.Has(caps, c) {
			t.Skipf("the %s does not claim capability %q", what, c)
		}
	}
}
