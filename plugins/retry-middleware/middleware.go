package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// middleware re-kicks failed tasks through the host. It keeps no state
// between calls (the attempt counter travels in the message's _retries
// label), so one value serves every concurrent OnError.
type middleware struct {
	opts options
	host sdk.Host
	log  hclog.Logger
	// rnd returns values in [0, 1) for the jitter; safe for concurrent use.
	rnd func() float64
	// brokerDelays is false when the target broker cannot delay messages
	// (then only RetryAfter could ask for a delay, and it is not honoured).
	brokerDelays bool
}

// Interface guards
var _ sdk.ErrorHandler = (*middleware)(nil)

// newMiddleware builds the middleware from its config and, when a host is
// present, checks that the target broker can delay messages if the backoff
// needs it.
func newMiddleware(ctx context.Context, cfg sdk.Config) (*middleware, error) {
	opts, err := parseOptions(cfg.Raw)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m := &middleware{opts: opts, host: cfg.Host, log: log, rnd: defaultRand, brokerDelays: true}
	if cfg.Host == nil {
		return m, nil
	}
	caps, err := cfg.Host.BrokerCapabilities(ctx, opts.Broker)
	if err != nil {
		return nil, sdk.AttrError("broker", "cannot read the capabilities of %s: %v; check "+
			"that a broker block with this name exists in taskiq.hcl", brokerDesc(opts.Broker), err)
	}
	m.brokerDelays = sdk.Has(caps, sdk.CapDelay)
	if !m.brokerDelays && opts.Delay > 0 {
		return nil, sdk.AttrError("delay", "%s has no %q capability, so retries would run "+
			"immediately; set delay = \"0s\" to accept immediate retries, or use a broker "+
			"with delay", brokerDesc(opts.Broker), sdk.CapDelay)
	}
	return m, nil
}

// brokerDesc names a broker in messages.
func brokerDesc(name string) string {
	if name == "" {
		return "the default broker"
	}
	return fmt.Sprintf("the broker %q", name)
}

// OnError decides whether a failed task runs again. A retry is a clone of
// the message with the same task_id, _retries incremented and a delay label,
// kicked through the host; it returns sdk.ErrNoResult so only the final
// outcome is stored. A final failure returns sdk.DeadLetter (or nil), and the
// host saves the error result.
func (m *middleware) OnError(ctx context.Context, msg *wire.Message, res *wire.Result, taskErr error) error {
	if !m.retryable(msg) {
		return nil
	}
	chain := causeChain(wireError(res, taskErr))
	log := m.log.With("task_id", msg.TaskID, "task_name", msg.TaskName)

	if reason := m.refusal(chain, taskErr); reason != "" {
		log.Debug("not retrying task", "reason", reason)
		return nil
	}

	// _retries comes from the message; bound it so a hostile value cannot
	// overflow the attempt number into a retry loop.
	prev := int64(0)
	if r, ok := msg.LabelInt(wire.LabelRetries); ok && r > 0 {
		prev = min(r, math.MaxInt32)
	}
	attempt := prev + 1
	maxRetries := int64(m.opts.MaxRetries)
	if v, ok := msg.Labels[wire.LabelMaxRetries]; ok {
		if n, ok := msg.LabelInt(wire.LabelMaxRetries); ok {
			maxRetries = n
		} else {
			log.Warn("ignoring a max_retries label that is not a whole number; using the config's max_retries",
				"label", v, "max_retries", maxRetries)
		}
	}

	if attempt >= maxRetries {
		errText := errorText(chain, taskErr)
		log.Warn("task failed for good: retries exhausted", "attempts", attempt, "error", errText)
		if m.opts.DeadLetterOnExhaustion {
			return sdk.DeadLetter(fmt.Sprintf("retries exhausted after %s: %s", attempts(attempt), errText))
		}
		return nil
	}

	delay, asked := m.delay(chain, taskErr, attempt)
	if asked && delay > 0 && !m.brokerDelays {
		log.Warn("the task asked to be retried after a delay, but the broker cannot delay "+
			"messages; retrying immediately", "retry_after", delay.String(), "broker", brokerDesc(m.opts.Broker))
		delay = 0
	}

	next := msg.Clone()
	next.SetLabel(wire.LabelRetries, attempt)
	if delay > 0 {
		next.SetLabel(wire.LabelDelay, delay.Seconds())
	} else {
		// A delay the message was first kicked with must not apply again.
		delete(next.Labels, wire.LabelDelay)
	}

	if m.host == nil {
		err := errors.New("retry: this middleware runs without a host connection, so it cannot " +
			"kick the retry; load it through taskiq.hcl in a worker")
		log.Error("cannot retry task", "error", err)
		return err
	}
	if err := m.host.Kick(ctx, m.opts.Broker, []*wire.Message{next}); err != nil {
		log.Error("could not kick the retry of the task; it fails now without further retries",
			"attempt", attempt, "max_retries", maxRetries, "broker", brokerDesc(m.opts.Broker), "error", err)
		return fmt.Errorf("retry: kick attempt %d of %d of task %s through %s: %w",
			attempt+1, maxRetries, msg.TaskID, brokerDesc(m.opts.Broker), err)
	}
	log.Info("retrying task", "attempt", attempt, "next_attempt", attempt+1,
		"max_retries", maxRetries, "delay", delay.String(), "error", errorText(chain, taskErr))

	if m.opts.StoreIntermediateResults {
		return nil
	}
	return sdk.ErrNoResult
}

// retryable applies the retry_on_error label, or default_retry_label when
// the label is absent or unreadable.
func (m *middleware) retryable(msg *wire.Message) bool {
	if v, ok := msg.LabelBool(wire.LabelRetryOnError); ok {
		return v
	}
	if v, ok := msg.Labels[wire.LabelRetryOnError]; ok {
		m.log.Warn("ignoring a retry_on_error label that is not a boolean; using default_retry_label",
			"task_id", msg.TaskID, "label", v, "default_retry_label", m.opts.DefaultRetryLabel)
	}
	return m.opts.DefaultRetryLabel
}

// refusal returns why the error must not be retried, or "".
func (m *middleware) refusal(chain []*wire.Error, taskErr error) string {
	if matchesAny(chain, []string{wire.ErrorTypeCancelled}) {
		return "the task was cancelled"
	}
	var nr *NoRetryError
	if errors.As(taskErr, &nr) || matchesAny(chain, []string{NoRetryType}) {
		return "the task marked its error with NoRetry"
	}
	if matchesAny(chain, m.opts.NoRetryOn) {
		return "the error matches no_retry_on"
	}
	if len(m.opts.RetryOn) > 0 && !matchesAny(chain, m.opts.RetryOn) {
		return "the error does not match retry_on"
	}
	return ""
}

// delay returns the wait before the next attempt: the task's RetryAfter when
// it gave one (asked is then true), the configured backoff otherwise.
func (m *middleware) delay(chain []*wire.Error, taskErr error, attempt int64) (d time.Duration, asked bool) {
	var ra *RetryAfterError
	if errors.As(taskErr, &ra) {
		return max(ra.Delay, 0), true
	}
	if d, ok := retryAfterDelay(chain); ok {
		return d, true
	}
	return Backoff(m.opts.Backoff, m.opts.Delay, m.opts.MaxDelay, int(attempt), m.opts.Jitter, m.rnd), false
}

// wireError is the task's failure in wire form: the result's error when the
// host filled it in, the Go error converted otherwise.
func wireError(res *wire.Result, taskErr error) *wire.Error {
	if res != nil && res.Error != nil {
		return res.Error
	}
	return wire.FromError(taskErr)
}

// errorText renders the failure for logs and the dead-letter reason.
func errorText(chain []*wire.Error, taskErr error) string {
	if len(chain) > 0 {
		return chain[0].Error()
	}
	if taskErr != nil {
		return taskErr.Error()
	}
	return "unknown error"
}

// attempts renders "1 attempt", "3 attempts".
func attempts(n int64) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}
