package sdk

import "time"

// streamCloseTimeout bounds how long closing a delivery stream waits for the
// plugin to apply the settlements already sent before the stream is cut.
const streamCloseTimeout = 5 * time.Second

// listenReadyKey is the header a plugin sends once Broker.Listen succeeded,
// so the host's Listen reports a failure to open synchronously.
const listenReadyKey = "taskiq-listen"

// Hook response controls: how a hook's sentinel errors cross the boundary.
const (
	controlNoResult   = "no_result"
	controlDeadLetter = "dead_letter"
)

// Execute response controls: how ErrRequeue and ErrReject cross the boundary.
const (
	controlRequeue = "requeue"
	controlReject  = "reject"
	// errorKindArguments marks an Execute error matching ErrBadArguments.
	errorKindArguments = "arguments"
)
