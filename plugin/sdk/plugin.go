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
	New func(ctx context.Context, cfg Config) (T, error)
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
	// ScheduleSource builds a schedule source (KindScheduleSource).
	ScheduleSource *Factory[ScheduleSource]
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
