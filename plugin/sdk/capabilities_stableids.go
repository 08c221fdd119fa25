package sdk

// CapStableIDs means a broker's delivery ids stay valid across a restart of
// the plugin process: a settlement (ack, nack, extension) naming a delivery
// handed out by a process that died can be applied by the next one. The host
// then keeps the settlements it could not send when the process died and
// sends them on the restarted process's first delivery stream; without the
// capability they are dropped and the broker redelivers those messages.
//
// A broker declaring it must accept, on any stream, settlements of
// deliveries it did not hand out on that stream, and apply (or harmlessly
// refuse) them; a broker that keeps its messages in the plugin's memory must
// not declare it.
const CapStableIDs = "stable_ids"
