package sdk

// CapLeaveUnknownTasks is declared by a broker configured to share its
// queues with consumers that are not taskiq-go workers (Python taskiq
// services in one consumer group, say). A worker of such a broker gives a
// message whose task name it does not register back to the queue with a
// nack, for another consumer to run, instead of dead-lettering it. The
// broker bounds how often a message can come back (the Redis plugin's
// max_attempts), so a task nobody registers still ends in the dead letter.
const CapLeaveUnknownTasks = "leave_unknown_tasks"
