package taskiqrabbitmq

import (
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Delays go through one TTL queue per delay bucket: every message of a
// bucket has the same time to live (the queue's x-message-ttl), so the one
// at the head always expires first and nothing waits behind a longer delay
// (RabbitMQ only expires messages at the head of a queue). An expired
// message is dead-lettered through the default exchange straight into its
// target queue. A bucket queue deletes itself (x-expires) once nobody
// declared it for a while; every publish into a bucket that was declared
// too long ago declares it again first, so a queue never expires while it
// still holds a message.

// bucketOf rounds a delay up to its bucket, in milliseconds: two
// significant digits, so a message waits at most about 10% (and at least
// its delay) longer than asked, and delays from 1ms to a day need fewer
// than 700 buckets.
func bucketOf(d time.Duration) int64 {
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms < 1 {
		return 1
	}
	p := int64(1)
	for ms/p >= 100 {
		p *= 10
	}
	return (ms + p - 1) / p * p
}

// bucketIdle is how long a bucket queue lives on after its longest-held
// message could have left it.
const bucketIdle = 10 * time.Minute

// bucketSpec declares the bucket queue of ms milliseconds that feeds target.
func bucketSpec(target string, ms int64) queueSpec {
	return queueSpec{
		name:    target + ".delay." + strconv.FormatInt(ms, 10),
		durable: true,
		args: amqp.Table{
			"x-message-ttl":             ms,
			"x-expires":                 2*ms + bucketIdle.Milliseconds(),
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": target,
		},
	}
}

// bucketRedeclareAfter is how long a bucket's declaration is trusted: a
// message published within it leaves the queue (after ms) before x-expires
// (2ms + bucketIdle after the declaration) with bucketIdle/2 to spare.
func bucketRedeclareAfter(ms int64) time.Duration {
	return time.Duration(ms)*time.Millisecond + bucketIdle/2
}
