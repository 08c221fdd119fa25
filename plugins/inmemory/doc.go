// Package inmemory is the taskiq-inmemory plugin: a broker, a result
// backend and a schedule source that keep everything in the memory of the
// plugin process. The broker deduplicates kicks by task id within a window
// (capability dedup) with a map of expiry times, as the scheduler needs.
//
// The queue lives in the plugin process and dies with it. Nothing is
// persisted: a plugin restart (or crash) loses every queued, delayed and
// in-flight message and every stored result. Use it for development, tests
// and benchmarks; use the Redis plugin when messages must survive a restart.
//
// Within the process the broker behaves like a real one, so code written
// against it keeps working on a durable broker: deliveries carry a visibility
// lease and are redelivered (with Attempt+1) when the lease expires or their
// stream closes, nacks can be delayed, messages that exceed max_attempts or
// are dead-lettered land in an inspectable dead-letter store, queues are
// routed by name with weights or strict priority, and messages may be
// delayed and prioritised.
//
// The broker is the throughput reference for plugins run as processes, so its
// hot path takes one mutex per batch, allocates no goroutine or timer per
// message, and keeps delayed messages and leases in two min-heaps served by a
// single background goroutine.
package inmemory
