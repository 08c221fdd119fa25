package sdk

// CapDedup means the broker drops a second kick of one task id within its
// deduplication window, so a task kicked twice under one id runs once.
const CapDedup = "dedup"
