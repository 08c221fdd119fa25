package sdk

// Environment variables the host sets for a plugin process.
const (
	// EnvLogLevel is the level the plugin logs at (trace, debug, info, warn,
	// error, off); the host passes its own so filtering happens at the source.
	EnvLogLevel = "TASKIQ_PLUGIN_LOG_LEVEL"
	// EnvMaxMessageSize is the largest message body in bytes (see
	// DefaultMaxMessageSize).
	EnvMaxMessageSize = "TASKIQ_PLUGIN_MAX_MESSAGE_SIZE"
)

// EnvCPUProfile names a file the plugin writes a CPU profile to while it
// runs, for `go tool pprof`; set it with `env = { ... }` in the plugin block.
const EnvCPUProfile = "TASKIQ_PLUGIN_CPUPROFILE"
