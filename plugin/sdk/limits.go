package sdk

import (
	"fmt"

	"google.golang.org/grpc"
)

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

// flowWindow is the HTTP/2 flow-control window of every plugin connection
// and of its streams, fixed: a fixed window turns off gRPC's bandwidth
// estimation, which otherwise answers nearly every data frame a process
// receives with a window update and a PING that the other process must
// read and acknowledge, two more wake-ups of each process per message
// between processes that sit on the same machine. 16 MiB is the largest
// window the estimation could grow to.
const flowWindow = 16 << 20

// dialOptions are the options of every connection to a plugin or to the
// host: the message size limit (grpcLimit), flowWindow and protoCodec.
func dialOptions(limit int) []grpc.DialOption {
	return []grpc.DialOption{grpc.WithStaticStreamWindowSize(flowWindow), grpc.WithStaticConnWindowSize(flowWindow),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(limit), grpc.MaxCallSendMsgSize(limit), grpc.ForceCodecV2(protoCodec{}))}
}

// serverOptions are the same for the servers of plugins and of the host.
func serverOptions(limit int) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.StaticStreamWindowSize(flowWindow), grpc.StaticConnWindowSize(flowWindow),
		grpc.MaxRecvMsgSize(limit), grpc.MaxSendMsgSize(limit), grpc.ForceServerCodecV2(protoCodec{})}
}
