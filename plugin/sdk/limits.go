package sdk

import "fmt"

// DefaultMaxMessageSize is the largest message body (or stored result) that
// crosses a plugin boundary unless taskiq.hcl sets max_message_size. gRPC's
// own 4 MiB default is raised to this, plus headroom for the envelope.
const DefaultMaxMessageSize = 16 << 20

// DefaultPrefetch is the credit window of a delivery stream: how many
// deliveries a broker plugin may hand out before the host settles some.
const DefaultPrefetch = 256

// grpcHeadroom is added to the message size limit for gRPC's frame limits,
// so that a body of exactly MaxMessageSize still fits with its envelope.
const grpcHeadroom = 64 << 10

// tooLarge reports a body over the size limit, saying how to raise it.
func tooLarge(what string, size, limit int) error {
	return fmt.Errorf("%w: %s is %d bytes, over the limit of %d bytes; raise max_message_size in taskiq.hcl if such messages are expected",
		ErrMessageTooLarge, what, size, limit)
}

// grpcLimit is the gRPC message limit for a body limit.
func grpcLimit(maxMessageSize int) int {
	return maxMessageSize + grpcHeadroom
}

// chunkBySize splits items into runs whose summed size stays within limit
// (each run holds at least one item), so that a batch of bodies each within
// the limit never makes one gRPC message over it.
func chunkBySize[T any](items []T, limit int, size func(T) int) [][]T {
	if len(items) == 0 {
		return nil
	}
	var out [][]T
	start, total := 0, 0
	for i, it := range items {
		s := size(it) + 64 // envelope of one item: ids, field tags
		if i > start && total+s > limit {
			out = append(out, items[start:i])
			start, total = i, 0
		}
		total += s
	}
	return append(out, items[start:])
}
