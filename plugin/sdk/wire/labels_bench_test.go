package wire_test

import (
	"encoding/json"
	"testing"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// BenchmarkObserveLabels is the wire work of one task with and without the
// labels taskiq bench --observe=all adds: the kick's encoding, the worker's
// decoding and the result's encoding (which carries the labels).
func BenchmarkObserveLabels(b *testing.B) {
	for _, name := range []string{"none", "observe"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := &wire.Message{TaskID: "0123456789abcdef0123456789abcdef", TaskName: "bench:noop",
					Labels: make(map[string]any), Args: []json.RawMessage{json.RawMessage(`12345`)}}
				if name == "observe" {
					m.SetLabel("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
					m.SetLabel("_taskiq_queue_time", 1764772800.123456)
				}
				body, err := m.AppendJSON(nil)
				if err != nil {
					b.Fatal(err)
				}
				d, err := wire.DecodeMessage(body)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := wire.EncodeResult(&wire.Result{ReturnValue: json.RawMessage(`1`), Labels: d.Labels}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
