package sdk

import "context"

// Kind is a plugin role.
type Kind string

// Roles a plugin binary can serve.
const (
	KindBroker        Kind = "broker"
	KindResultBackend Kind = "result_backend"
	KindMiddleware    Kind = "middleware"
)

// Factory builds one role from its config.
type Factory[T any] struct {
	// Schema describes the role's config block.
	Schema Schema
	// Capabilities lists the optional features the role implements.
	Capabilities []string
	// New builds the role. Return AttrError values (joined) for bad config.
	// cfg.Raw has passed Schema.Prepare: it holds the schema's defaults and
	// only values the schema allows.
	New func(ctx context.Context, cfg Config) (T, error)
	// Check, when set, checks a config block the way New would, without
	// building the role or connecting to anything; `taskiq config validate`
	// runs it, so a value New would refuse is reported before a worker
	// starts. Return AttrError values (joined), as from New. cfg is the one
	// New would get, except that Host is nil. Without Check, validation
	// stops at the schema's checks.
	Check func(ctx context.Context, cfg Config) error
	// MaxMessageSize is the largest message body a broker accepts, in
	// bytes, when its service has a limit below the host's (a NATS server
	// takes 1 MiB by default); 0 means none of its own. The host refuses a
	// larger kick with ErrMessageTooLarge before it reaches the plugin. A
	// broker whose limit depends on its config implements
	// MessageSizeLimiter.
	MaxMessageSize int
}

// MessageSizeLimiter is implemented by a built broker whose largest
// accepted message body depends on its config or its service. A positive
// value replaces Factory.MaxMessageSize for the configured broker.
type MessageSizeLimiter interface {
	MaxMessageSize() int
}

// Plugin describes a plugin binary: its identity and the roles it serves. A
// binary may serve several roles; each process the host starts is configured
// for exactly one of them.
type Plugin struct {
	Name    string
	Version string

	Broker        *Factory[Broker]
	ResultBackend *Factory[ResultBackend]
	// Middleware builds a value implementing the hook interfaces it wants;
	// its hooks are listed by HooksOf on a value built with an empty config,
	// or by the Hooks field when set.
	Middleware *Factory[Middleware]
	// Hooks lists the middleware's hooks; when empty they are detected.
	Hooks []Hook
	// Tasks builds a task module (KindTasks, see TaskModule).
	Tasks *Factory[TaskModule]
}

// Capable is implemented by a role whose capabilities depend on its config
// (a Redis broker in list mode is not ackable, say). The capabilities it
// returns after New replace the Factory's for that configured role.
type Capable interface {
	Capabilities() []string
}

// RoleInfo describes one role of a plugin.
type RoleInfo struct {
	Kind         Kind
	Capabilities []string
	Hooks        []Hook
	Schema       Schema
	// MaxMessageSize is the role's own message size limit (Factory's); 0:
	// none.
	MaxMessageSize int
}

// Info describes a plugin binary.
type Info struct {
	Name            string
	Version         string
	ProtocolVersion int
	Roles           []RoleInfo
}

// Role returns the info of one role.
func (i Info) Role(k Kind) (RoleInfo, bool) {
	for _, r := range i.Roles {
		if r.Kind == k {
			return r, true
		}
	}
	return RoleInfo{}, false
}

// Has reports whether caps contains c.
func Has(caps []string, c string) bool {
	for _, x := range caps {
		if x == c {
			return true
		}
	}
	return false
}
