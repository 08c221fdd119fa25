package core

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// BenchmarkTaskCall measures what calling a registered task function costs
// the worker: decoding the arguments, the reflected call and encoding the
// result, for the benchmark task's shape.
func BenchmarkTaskCall(b *testing.B) {
	app := newApp()
	task, err := NewTask[[2]int64](app, "bench:call", func(_ context.Context, a, c int64, _ string) ([2]int64, error) {
		return [2]int64{a, c}, nil
	}, WithParamNames("idx", "at", "payload"))
	if err != nil {
		b.Fatal(err)
	}
	msg := &wire.Message{TaskName: "bench:call", Args: []json.RawMessage{[]byte(`12`), []byte(`1733000000000000000`), []byte(`""`)}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := task.def.call(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}
