// Package taskiqrabbitmq is the RabbitMQ broker plugin of taskiq-go
// (bin/taskiq-rabbitmq), on AMQP 0-9-1 with github.com/rabbitmq/amqp091-go.
//
// Kicks are published in batches on a confirm-mode channel and return once
// the server confirmed every message. Each delivery stream has a channel of
// its own whose QoS prefetch is the stream's credit window. An ack acks; a
// nack publishes the message again (into its queue, or into the delay
// bucket of the nack's delay) with the next attempt number and then acks
// the original; a dead letter publishes it to the dead-letter queue with
// the reason in a header and then acks. Quorum queues carry
// x-delivery-limit, so a message whose workers keep dying is dead-lettered
// by the server instead of crash-looping them.
//
// Delays use one TTL queue per delay bucket (the delay rounded up to two
// significant digits of milliseconds) that dead-letters into the target
// queue: every message of a bucket has the same TTL, so no message waits
// behind a longer one.
//
// Delivery tags belong to a channel. When a channel or the connection is
// lost the stream opens a new one; deliveries of the old channel are
// dropped from the buffer and their settlements ignored, since the server
// has put those messages back in their queues already.
//
// There are no leases: a delivery is held as long as its channel lives,
// bounded by the server's consumer timeout (consumer_timeout, 30 minutes by
// default), after which the server closes the channel and redelivers.
// The plugin therefore claims "ackable" but not "lease".
//
// The compat attribute selects the queue layout of taskiq-aio-pika 0.5 or
// 0.6 so that Go and Python producers and workers share queues. See
// README.md in this directory.
package taskiqrabbitmq
