// Package core is the taskiq-go host: what an application imports to define
// tasks, kick them, read their results and run workers. It is the only
// package an application needs: the types it shares with plugins (Message,
// TaskResult, TaskError, Progress, Queue, Delivery, the middleware hook
// interfaces) are aliased here.
//
// The path of one task, and where it lives:
//
//	Task.Kiq / Kicker.Kiq   kicker.go   builds a Message, runs pre_send, kicks in batches
//	  → broker              a plugin process (supervised) or an in-process Broker
//	  → RunWorker           worker.go   Listen stream, decode once, pre_execute, run
//	  → the task function   task.go     arguments decoded by the types checked at registration
//	  → result backend      worker.go   saveResult: results written in batches
//	  → settlement          settle.go   the run's outcome and the ack type decide ack, nack or dead letter
//	  → AsyncTask           results.go  WaitResult returns as soon as a notifying backend saved it
//
// An App holds the brokers, the result backend, the middlewares, the task
// registry and the shared state. Build one in process with New, or from
// taskiq.hcl with Load, which starts each configured plugin as a supervised
// child process. docs/architecture.md maps every package.
package core
