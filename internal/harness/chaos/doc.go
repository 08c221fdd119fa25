// Package chaos runs taskiq workers under injected faults and accounts for
// every task: the chaos runs of `make chaos` and `make chaos-ci`
// (docs/chaos.md).
//
// A scenario starts its own redis-server (private port, AOF with
// appendfsync always), a `taskiq worker` supervisor running the chaos task
// module (chaos/tasks-module), kicks a known set of task ids with unique
// payloads, injects its faults (SIGKILL of worker children or of plugin
// processes, Redis restarts, a Redis out of memory, misbehaving tasks) and
// waits until every task has a result or a dead letter and the queue is
// empty. It then counts,
// from the result backend, the dead-letter stream and the execution log the
// module writes (chaos/execlog), what was lost, duplicated and why.
//
// The guarantees checked: no task lost on the Redis stream broker; every
// duplicate execution explained by a fault the harness injected on the
// worker that ran it; every task with its expected outcome; the supervisor
// alive until told to stop, then exiting 0; no plugin process outliving it.
package chaos
