package sdk

import (
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// bufferPool holds the buffers that plugin connections marshal messages
// into and gather received ones in. gRPC's default pool has tiers of
// 256 B, 4, 16 and 32 kB and 1 MB, and zeroes a buffer's whole capacity
// when it hands one out; its protobuf codec always takes from that pool.
// A stream batch of a few hundred messages (over 32 kB, common once
// messages carry trace context) therefore took a 1 MB buffer and cleared
// all of it, some 30 µs a batch. This pool zeroes too, with a tier at
// every power of two, so it clears at most twice the message.
var bufferPool = func() mem.BufferPool {
	p, err := mem.NewBinaryTieredBufferPool(8, 10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25)
	if err != nil {
		panic(err) // the exponents are constants
	}
	return p
}()

// protoCodec is gRPC's protobuf codec (the same wire bytes, the name
// "proto") with its buffers from bufferPool. Every plugin connection, in
// both directions, forces it on its calls.
type protoCodec struct{}

func (protoCodec) Name() string { return "proto" }

func (protoCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("marshal: %T is not a protobuf message", v)
	}
	size := proto.Size(m)
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := bufferPool.Get(size)
	if _, err := (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend((*buf)[:0], m); err != nil {
		bufferPool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, bufferPool)}, nil
}

func (protoCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("unmarshal: %T is not a protobuf message", v)
	}
	buf := data.MaterializeToBuffer(bufferPool)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}
