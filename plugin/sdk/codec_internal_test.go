package sdk

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// protoCodec writes the bytes gRPC's own codec writes, small messages and
// pooled ones alike, and reads them back.
func TestProtoCodecRoundTrip(t *testing.T) {
	for _, size := range []int{0, 100, 40 << 10, 300 << 10} {
		in := &pluginv1.KickRequest{Messages: []*pluginv1.Outgoing{{TaskId: "id", Body: bytes.Repeat([]byte{'x'}, size)}}}
		want, err := proto.Marshal(in)
		require.NoError(t, err)

		data, err := protoCodec{}.Marshal(in)
		require.NoError(t, err)
		require.Equal(t, want, data.Materialize(), "size %d", size)

		// Received messages arrive in frames of at most 16 kB.
		var frames mem.BufferSlice
		for b := want; len(b) > 0; b = b[min(len(b), 16<<10):] {
			frames = append(frames, mem.SliceBuffer(bytes.Clone(b[:min(len(b), 16<<10)])))
		}
		var out pluginv1.KickRequest
		require.NoError(t, protoCodec{}.Unmarshal(frames, &out))
		require.True(t, proto.Equal(in, &out), "size %d", size)
		data.Free()
	}
	_, err := protoCodec{}.Marshal("not a message")
	require.ErrorContains(t, err, "not a protobuf message")
	require.ErrorContains(t, protoCodec{}.Unmarshal(nil, 3), "not a protobuf message")
}

// A message of 40 kB takes a 64 kB buffer, not the 1 MB of gRPC's default
// tiers (which zero the whole buffer on every use).
func TestBufferPoolTiers(t *testing.T) {
	for size, want := range map[int]int{40 << 10: 64 << 10, 33 << 10: 64 << 10, 200 << 10: 256 << 10, 2 << 10: 4 << 10} {
		buf := bufferPool.Get(size)
		require.Len(t, *buf, size)
		require.Equal(t, want, cap(*buf), "size %d", size)
		bufferPool.Put(buf)
	}
}
