// Package retry is taskiq-go's retry middleware: when a task fails, it kicks
// the same message again (same task_id, _retries incremented) after a
// backoff, until max_retries attempts have run; then the failure is final and
// the message goes to the dead-letter store.
//
// The middleware runs in the worker host as the plugin binary
// taskiq-retry-middleware (cmd/taskiq-retry-middleware), configured by a
// middleware block in taskiq.hcl. It implements only on_error, and re-kicks
// through the host's broker connection (sdk.Host), never its own.
//
// A task module imports this package only for two errors a task can return:
// NoRetry(err), which makes the failure final at once, and RetryAfter(d,
// err), which retries after d instead of the backoff. Both survive the trip
// across process boundaries through their wire form (exc_type "NoRetry" and
// "RetryAfter"), so Python tasks can raise exceptions of those names too.
//
// The labels and their meaning follow Python taskiq's retry middlewares:
// retry_on_error opts a task in, max_retries counts every attempt including
// the first, and _retries carries the number of attempts already made.
package retry
