package taskiqnats

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// connect opens the connection and its JetStream context. Refused
// credentials fail at once (sdk.ErrUnauthenticated); a server that cannot
// be reached does not: the connection keeps trying in the background, so
// the plugin starts and its calls fail with sdk.ErrUnavailable until NATS
// is back.
func connect(c connOptions, log hclog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := append([]nats.Option{}, c.opts...)
	opts = append(opts,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS; reconnecting", "servers", c.String(), "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "server", sdk.RedactURLs(nc.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS error", "error", err)
		}),
	)
	url := strings.Join(c.servers, ",")
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		if isAuthErr(err) {
			return nil, nil, fmt.Errorf("nats connect to %s: %w: %w", c, sdk.ErrUnauthenticated, err)
		}
		log.Warn("NATS unreachable at start; connecting in the background", "servers", c.String(), "error", err)
		nc, err = nats.Connect(url, append(opts, nats.RetryOnFailedConnect(true))...)
		if err != nil {
			return nil, nil, fmt.Errorf("nats connect to %s: %w", c, err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("nats jetstream: %w", err)
	}
	return nc, js, nil
}

func isAuthErr(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrPermissionViolation) ||
		strings.Contains(strings.ToLower(err.Error()), "authorization violation")
}

// wrapErr adds what failed and where, and marks the errors that mean "NATS
// cannot be reached right now" with sdk.ErrUnavailable.
func wrapErr(op string, c connOptions, nc *nats.Conn, err error) error {
	if err == nil {
		return nil
	}
	if isAuthErr(err) {
		return fmt.Errorf("nats %s (%s): %w: %w", op, c, sdk.ErrUnauthenticated, err)
	}
	if isUnavailable(nc, err) {
		return fmt.Errorf("nats %s (%s): %w: %w", op, c, sdk.ErrUnavailable, err)
	}
	return fmt.Errorf("nats %s (%s): %w", op, c, err)
}

func isUnavailable(nc *nats.Conn, err error) bool {
	if nc != nil && !nc.IsConnected() {
		return true
	}
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}
