package telemetry

import "sync"

// Values a bounded label takes instead of the real one.
const (
	// Unknown is the task label of a message whose task the worker does not
	// know (unknown task name, unparseable body).
	Unknown = "unknown"
	// Other is the value of a label once it has taken maxValues values.
	Other = "other"
	// DefaultQueue is the queue label of a message that names no queue.
	DefaultQueue = "default"
)

// maxValues bounds the distinct values of one label.
const maxValues = 500

// boundedSet hands out label values: a value seen before, or one of the
// first maxValues, is itself; any later one is Other.
type boundedSet struct {
	mu   sync.RWMutex
	seen map[string]struct{}
}

func (b *boundedSet) value(v string) string {
	b.mu.RLock()
	_, ok := b.seen[v]
	n := len(b.seen)
	b.mu.RUnlock()
	if ok {
		return v
	}
	if n >= maxValues {
		return Other
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen == nil {
		b.seen = map[string]struct{}{}
	}
	if len(b.seen) >= maxValues {
		if _, ok := b.seen[v]; !ok {
			return Other
		}
	}
	b.seen[v] = struct{}{}
	return v
}
