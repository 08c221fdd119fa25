package inmemory

import "time"

// message is one kicked message and its bookkeeping. It is in exactly one
// place at a time: a queue level, the delayed heap, or a stream's in-flight
// set (and then the lease heap).
type message struct {
	taskID     string
	taskName   string
	body       []byte
	queue      string
	priority   int
	enqueuedAt time.Time
	// attempt counts deliveries so far; the next delivery carries attempt+1.
	attempt int
	// ref names the message to the inspector (MessageInfo.Ref).
	ref uint64

	// due is when a delayed message becomes ready; seq breaks ties so that
	// messages due at the same instant keep their kick order.
	due time.Time
	seq uint64

	// In flight: the delivery that currently holds the message.
	deliveryID uint64
	owner      *stream
	deadline   time.Time

	// heapIndex is the position in whichever heap holds the message (delayed
	// or lease), -1 when in none; a message is never in both.
	heapIndex int
}

// level holds the ready messages of one priority.
type level struct {
	priority int
	fifoOf[*message]
}

// maxIdleLevels bounds how many empty priority levels a queue keeps around
// for reuse; beyond it, drained levels are dropped so that a stream of
// distinct priorities cannot grow a queue forever.
const maxIdleLevels = 4

// queue is a named queue: ready messages by priority (highest first, FIFO
// within a priority) and the streams that listen to it.
type queue struct {
	name string
	// levels is sorted by priority, highest first; usually there is one.
	levels []*level
	n      int
	// listeners are the open streams consuming this queue.
	listeners []*stream
	// paused queues are not delivered from (Inspector.SetPaused).
	paused bool
	// delivered counts the deliveries made from the queue.
	delivered int64
}

func (q *queue) push(m *message) {
	q.n++
	i := 0
	for ; i < len(q.levels); i++ {
		l := q.levels[i]
		if l.priority == m.priority {
			l.push(m)
			return
		}
		if l.priority < m.priority {
			break
		}
	}
	l := &level{priority: m.priority}
	l.push(m)
	q.levels = append(q.levels, nil)
	copy(q.levels[i+1:], q.levels[i:])
	q.levels[i] = l
}

// pop returns the oldest message of the highest priority; the queue must
// not be empty.
func (q *queue) pop() *message {
	for i, l := range q.levels {
		if l.len() == 0 {
			continue
		}
		m := l.pop()
		q.n--
		if l.len() == 0 && len(q.levels) > maxIdleLevels {
			q.levels = append(q.levels[:i], q.levels[i+1:]...)
		}
		return m
	}
	panic("inmemory: pop from an empty queue")
}

func (q *queue) removeListener(s *stream) {
	for i, l := range q.listeners {
		if l == s {
			q.listeners = append(q.listeners[:i], q.listeners[i+1:]...)
			return
		}
	}
}
