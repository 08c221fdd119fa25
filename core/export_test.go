package core

import "time"

// PluginPIDs returns the current process id of each plugin Load started,
// keyed by "<kind>.<name>", so tests can kill them.
func PluginPIDs(a *App) map[string]int {
	out := map[string]int{}
	for _, p := range a.PluginProcesses() {
		out[string(p.Kind)+"."+p.Name] = p.PID
	}
	return out
}

// Exported for the argument codec tests, and the module server for tests
// that serve a module in process.
var (
	DecodeArg    = decodeArg
	EncodeValue  = encodeValue
	ModulePlugin = modulePlugin
)

// WithClock replaces the time source of the worker (see clock).
func WithClock(c interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}) Option {
	return func(a *App) error { a.clock = c; return nil }
}
