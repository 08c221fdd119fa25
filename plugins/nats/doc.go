// Package taskiqnats is taskiq-go's NATS JetStream plugin: a broker on a
// JetStream stream with durable pull consumers, and a result backend on a
// JetStream key-value bucket. With its defaults it shares a stream with
// Python taskiq-nats' PullBasedJetStreamBroker (subject "taskiq_tasks",
// stream "taskiq_jetstream", durable consumer "taskiq_durable"; the body is
// the taskiq message JSON). Its binary is cmd/taskiq-nats; Plugin returns the
// sdk.Plugin it serves. The README gives the configuration, the delivery
// guarantees and the settings of a Python service on the same stream.
//
// # Broker
//
// Kick publishes a batch asynchronously (Nats-Msg-Id = task id) and waits for
// every acknowledgement. Each queue is a subject ("<subject>" for the
// default queue, "<subject>.<queue>" for the queue_name label) consumed by a
// durable pull consumer ("<durable>", "<durable>_<queue>") shared by every
// worker. A stream pulls at most the credit its worker gave, acks with
// +ACK, nacks with -NAK (with a delay: NakWithDelay), extends a lease with
// +WPI (InProgress: the lease is the consumer's AckWait, reported in each
// delivery's deadline), and dead-letters by copying the message to the
// dead-letter stream with its reason, then +TERM. A message delivered more
// than max_deliver times is dead-lettered the same way. Delayed kicks wait
// in a delay stream (see delayMover). Delivery ids are JetStream reply
// subjects, valid on any connection: capability stable_ids.
//
// # Result backend
//
// Results are JSON values under the task id in a key-value bucket; a watch
// of the bucket wakes WaitResult as soon as a result is stored.
package taskiqnats
