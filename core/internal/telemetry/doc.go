// Package telemetry is the host's observability: Prometheus metrics,
// OpenTelemetry spans and messaging metrics, and the trace context carried
// in message labels. The kicker and the worker engine call a Recorder at
// each step of a task's path; a nil Recorder is off and costs a nil check.
//
// Label cardinality is bounded: a metric is labelled by task name and queue
// only, task names the worker does not know collapse to "unknown", and past
// a fixed number of distinct values a label reads "other".
package telemetry
