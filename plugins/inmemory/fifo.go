package inmemory

// fifoOf is a slice used as a queue: pop advances head, and the backing
// array is reused once drained or compacted once half of it is dead, so a
// steady flow of push/pop costs no allocation.
type fifoOf[T any] struct {
	items []T
	head  int
}

func (f *fifoOf[T]) len() int { return len(f.items) - f.head }

// front returns the oldest item; the fifo must not be empty.
func (f *fifoOf[T]) front() T { return f.items[f.head] }

func (f *fifoOf[T]) push(v T) {
	if f.head > 0 && len(f.items) == cap(f.items) && f.head >= len(f.items)/2 {
		n := copy(f.items, f.items[f.head:])
		clear(f.items[n:])
		f.items = f.items[:n]
		f.head = 0
	}
	f.items = append(f.items, v)
}

// pop removes and returns the oldest item; the fifo must not be empty.
func (f *fifoOf[T]) pop() T {
	v := f.items[f.head]
	var zero T
	f.items[f.head] = zero
	f.head++
	if f.head == len(f.items) {
		f.items = f.items[:0]
		f.head = 0
	}
	return v
}
