package sdk

// CapDedup is the broker capability to deduplicate kicks by task id: a kick
// whose Outgoing.DedupWindow is positive is dropped, without an error, when
// a message with the same task id was accepted within that window. The
// scheduler relies on it to fire each slot once whatever the number of
// replicas.
const CapDedup = "dedup"
