package conformance_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq/internal/leaktest"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/conformance"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

// These tests check the suite itself: it passes a correct broker and fails
// brokers with known bugs, each in the subtest that is about that bug. The
// correct broker is the in-memory plugin; the buggy ones wrap it.

// envBug selects the bug the plugin process and the inner test run have.
const envBug = "TASKIQ_CONFORMANCE_BUG"

func TestMain(m *testing.M) {
	sdktest.RunPluginIfRequested(buggyPlugin(os.Getenv(envBug)))
	os.Exit(leaktest.Code(m.Run()))
}

func buggyPlugin(bug string) sdk.Plugin {
	p := inmemory.Plugin()
	p.Broker = &sdk.Factory[sdk.Broker]{
		Capabilities: inmemory.BrokerCapabilities,
		New: func(ctx context.Context, cfg sdk.Config) (sdk.Broker, error) {
			return &buggyBroker{Broker: inmemory.NewBroker(inmemory.BrokerOptions{Logger: cfg.Logger}), bug: bug}, nil
		},
	}
	return p
}

// buggyBroker is the in-memory broker with one bug switched on.
type buggyBroker struct {
	*inmemory.Broker
	bug string
}

func (b *buggyBroker) Kick(ctx context.Context, msgs []sdk.Outgoing) error {
	switch b.bug {
	case "duplicate_kick":
		if len(msgs) > 50 { // only big batches: the bug hides from small kicks
			msgs = append(msgs, msgs[len(msgs)-1])
		}
	case "ignore_delay":
		for i := range msgs {
			msgs[i].Delay = 0
		}
	}
	return b.Broker.Kick(ctx, msgs)
}

func (b *buggyBroker) Listen(ctx context.Context, req sdk.ListenRequest) (sdk.Stream, error) {
	s, err := b.Broker.Listen(ctx, req)
	if err != nil {
		return nil, err
	}
	return &buggyStream{Stream: s, bug: b.bug}, nil
}

type buggyStream struct {
	sdk.Stream
	bug string
}

func (s *buggyStream) Recv(ctx context.Context, max int) ([]sdk.Delivery, error) {
	ds, err := s.Stream.Recv(ctx, max)
	if s.bug == "attempt_stuck" {
		for i := range ds {
			ds[i].Attempt = 1
		}
	}
	return ds, err
}

func (s *buggyStream) Settle(ctx context.Context, ss []sdk.Settlement) error {
	if s.bug == "lose_acks" {
		kept := ss[:0:0]
		for _, x := range ss {
			if x.Kind != sdk.SettleAck {
				kept = append(kept, x)
			}
		}
		ss = kept
	}
	return s.Stream.Settle(ctx, ss)
}

const maxSize = 16 << 10

func launchBroker(t *testing.T) sdk.Broker {
	return sdktest.Launch(t, sdk.KindBroker, `{}`,
		sdktest.WithEnv(envBug+"="+os.Getenv(envBug)), sdktest.WithMaxMessageSize(maxSize)).Broker()
}

// TestBrokerSuite is the suite run the self-checks start with a bug set;
// without one, it is the in-memory broker, which must pass.
func TestBrokerSuite(t *testing.T) {
	conformance.TestBroker(t, launchBroker, inmemory.BrokerCapabilities,
		conformance.WithMaxMessageSize(maxSize), conformance.WithLease(500*time.Millisecond), conformance.WithDelay(500*time.Millisecond))
}

// TestSuiteCatchesBugs re-runs this test binary with a bug switched on and
// one subtest selected, and expects that subtest to fail.
func TestSuiteCatchesBugs(t *testing.T) {
	if os.Getenv(envBug) != "" {
		t.Skip("inner run")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	for bug, subtest := range map[string]string{
		"lose_acks":      "KickListenAck",
		"duplicate_kick": "BatchKick",
		"ignore_delay":   "DelayedKick",
		"attempt_stuck":  "AttemptCounting",
	} {
		t.Run(bug, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, "-test.run=^TestBrokerSuite$/^"+subtest+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), envBug+"="+bug)
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "the suite passed a broker with bug %s:\n%s", bug, out)
			require.Contains(t, string(out), "--- FAIL: TestBrokerSuite/"+subtest, "the bug is caught by the subtest about it")
			require.False(t, strings.Contains(string(out), "panic:"), "the suite fails cleanly:\n%s", out)
		})
	}
}
