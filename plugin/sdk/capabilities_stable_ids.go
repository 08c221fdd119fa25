package sdk

// CapStableIDs means a broker's delivery ids stay valid across a restart of
// the plugin process: a settlement sent to the new process still applies.
const CapStableIDs = "stable_ids"
