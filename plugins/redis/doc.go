// Package taskiqredis is taskiq-go's Redis plugin: a broker and a result
// backend that speak the same keys and bytes as Python taskiq-redis, so Go and
// Python producers, workers and result readers can share one Redis.
//
// The package is named taskiqredis (not redis) so that it never shadows
// github.com/redis/go-redis/v9 in code that imports both. Its binary is
// cmd/taskiq-redis; Plugin returns the sdk.Plugin it serves.
//
// # Broker modes
//
//   - "stream" (default): XADD <queue> * data <message> to produce;
//     XREADGROUP through consumer group <queue> to consume. At-least-once:
//     an entry stays pending in the group until it is acked, and an entry
//     whose lease expired is reclaimed by another worker. Capabilities:
//     ackable, lease, delay, dead_letter, routing, stable_ids (a delivery
//     id is the entry id, so the process restarted after a crash can ack
//     what the dead one delivered).
//   - "list": LPUSH/BRPOP on <queue>, exactly as taskiq-redis. At-most-once:
//     a popped message lives only in the worker. Capabilities: delay,
//     dead_letter, routing.
//   - "pubsub": PUBLISH/SUBSCRIBE on channel <queue>; every listener gets
//     every message published while it is subscribed. At-most-once.
//     Capability: broadcast.
//
// Priorities are not implemented (no "priority" capability; Outgoing.Priority
// is ignored). Use routing instead: separate queues listened to with
// ListenRequest.StrictPriority, or with weights.
//
// # Leases and reclaim (stream mode)
//
// Redis records, per pending entry, when it was last delivered or claimed.
// The lease of a delivery is "idle time < lease". SettleExtend re-claims the
// entry for the same consumer (only while it still owns it), which resets
// the idle time: an extension always renews a full lease, whatever
// Settlement.Delay asks for. Every lease/2, when its worker asks for work, a
// listener runs XAUTOCLAIM with min-idle = lease and delivers what it
// claimed with Attempt = the delivery count Redis keeps (plus the "attempt"
// field of entries re-added by a nack). XAUTOCLAIM checks idleness and
// changes the owner in one atomic step, so concurrent reclaimers never claim
// the same entry twice: the reclaim cannot cause a double execution, unlike
// the lock-based reclaim of Python taskiq-redis. A listener never delivers
// again an entry it still holds (its worker stopped extending, say because
// it was frozen): it logs it and puts the entry back, still expired and
// with its delivery count, for another worker to take over.
//
// Nacks and dead letters are one Lua script per queue that writes before it
// acks, entry by entry, so a Redis over maxmemory (which refuses the write
// but would run XACK and XDEL) leaves the entries pending: they come back
// when their lease expires.
//
// An entry delivered more than max_attempts times is moved to the
// dead-letter stream instead of being delivered again; so is an entry with
// no "data" field.
//
// # Deletion and trimming
//
// An acked entry is XACKed and XDELed (delete_acked, default true), so the
// stream holds only unfinished work and does not grow without bound. With
// maxlen > 0 every XADD also trims with MAXLEN ~ maxlen, which can drop
// unread entries; it exists for streams shared with producers or groups that
// never ack.
//
// # Delay
//
// A message with a delay goes to the sorted set "<queue>:delayed", scored by
// its due time in Unix milliseconds, as "<16 hex id>|<attempt>|<message>".
// Listeners run a script every delay_poll that moves due members to the
// queue; the script removes and pushes in one atomic step, so each member is
// moved by exactly one listener. Nacks with a delay use the same set.
//
// # Dead letter
//
// Stream "<queue>:dead" (or dead_letter_queue) receives entries with fields
// data, reason, queue, attempt, failed_at (Unix ms) and original_id.
//
// # Results
//
// SET <task_id> <json> [PX ttl] (key "<prefix>:<task_id>" with a prefix),
// progress under "<key>__progress", EXISTS for readiness, GET or GETDEL
// (keep_results=false). Each SET is followed, in the same pipeline, by
// PUBLISH taskiq:result:<key>; WaitResult subscribes before it reads, so it
// returns as soon as the result is saved, with a poll_fallback re-read for
// notifications lost in a reconnect.
//
// # Topologies
//
// url may be redis:// or rediss:// (TLS; tls_ca_file, tls_cert_file and
// tls_key_file configure it). sentinel_master + sentinel_addrs
// select Redis Sentinel; cluster_addrs selects Redis Cluster, where each
// queue's keys carry the hash tag {queue} so its scripts stay on one slot.
//
// # Outages
//
// Kick returns an error wrapping sdk.ErrUnavailable (with the address, never
// the password) when Redis cannot be reached. Listener loops and Settle
// retry with capped exponential backoff. A delivery stream whose Redis
// calls have kept failing for unavailable_after (default 10s) ends with
// an error wrapping sdk.ErrUnavailable, so that the host reopens it and
// can report the worker not ready; the entries it held stay pending and
// are reclaimed by the next stream after their lease. Refused credentials
// end a stream at once with ErrAuthFailed.
package taskiqredis
