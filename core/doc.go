// Package core is the taskiq-go host: what an application imports to define
// tasks, kick them, read their results and run workers.
//
// The path of one task, and where it lives:
//
//	Task.Kiq / Kicker.Kiq      kicker.go   builds a wire.Message, runs pre_send
//	  → sdk.Broker.Kick        (batched by the host, a plugin process or in-process)
//	  → Worker                 worker.go   Listen stream, decode once, pre_execute
//	  → the task function      task.go     args decoded by the types checked at registration
//	  → sdk.ResultBackend      results.go  result written in batches, then ack per ack_type
//
// An App holds the brokers, the result backend, the middlewares, the task
// registry and the shared state. Build one in process with New, or from
// taskiq.hcl with Load, which starts each configured plugin as a supervised
// child process.
package core
