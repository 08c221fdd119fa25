package inmemory

import "container/heap"

// timeHeap is a min-heap of messages ordered by a time (due time for the
// delayed heap, lease deadline for the lease heap). It keeps each message's
// heapIndex current so that acks and lease extensions can remove or move a
// message in O(log n) instead of leaving stale entries behind.
type timeHeap struct {
	items []*message
	less  func(a, b *message) bool
}

func newDelayHeap() *timeHeap {
	return &timeHeap{less: func(a, b *message) bool {
		if a.due.Equal(b.due) {
			return a.seq < b.seq
		}
		return a.due.Before(b.due)
	}}
}

func newLeaseHeap() *timeHeap {
	return &timeHeap{less: func(a, b *message) bool {
		if a.deadline.Equal(b.deadline) {
			return a.deliveryID < b.deliveryID
		}
		return a.deadline.Before(b.deadline)
	}}
}

// heap.Interface; use the methods below, not these.
func (h *timeHeap) Len() int           { return len(h.items) }
func (h *timeHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *timeHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].heapIndex = i
	h.items[j].heapIndex = j
}
func (h *timeHeap) Push(x any) {
	m := x.(*message)
	m.heapIndex = len(h.items)
	h.items = append(h.items, m)
}
func (h *timeHeap) Pop() any {
	n := len(h.items) - 1
	m := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	m.heapIndex = -1
	return m
}

func (h *timeHeap) add(m *message) { heap.Push(h, m) }

// peek returns the earliest message, or nil.
func (h *timeHeap) peek() *message {
	if len(h.items) == 0 {
		return nil
	}
	return h.items[0]
}

func (h *timeHeap) popMin() *message { return heap.Pop(h).(*message) }

func (h *timeHeap) remove(m *message) {
	if m.heapIndex >= 0 {
		heap.Remove(h, m.heapIndex)
	}
}

// fix restores the order after m's time changed.
func (h *timeHeap) fix(m *message) { heap.Fix(h, m.heapIndex) }
