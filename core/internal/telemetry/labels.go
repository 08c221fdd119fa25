package telemetry

import (
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// The labels the host reads and writes are wire's (wire.LabelQueueTime and
// the others): the spelling of Python taskiq's middlewares.

// kickTime reads when msg was kicked from the labels either Python
// middleware writes (or the host itself).
func kickTime(msg *wire.Message) (time.Time, bool) {
	if f, ok := msg.LabelFloat(wire.LabelQueueTime); ok && f > 0 {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), true
	}
	if s, ok := msg.LabelString(wire.LabelEnqueueTimestamp); ok && s != "" {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999-07:00"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// labelCarrier lets an OpenTelemetry propagator read and write message
// labels. Values are written as strings, as Python's propagator writes them.
type labelCarrier struct{ msg *wire.Message }

func (c labelCarrier) Get(key string) string {
	// Python's propagators write the lower-case header names, as Go's ask.
	s, _ := c.msg.Labels[key].(string)
	return s
}

func (c labelCarrier) Set(key, value string) { c.msg.SetLabel(key, value) }

func (c labelCarrier) Keys() []string {
	keys := make([]string, 0, len(c.msg.Labels))
	for k := range c.msg.Labels {
		keys = append(keys, k)
	}
	return keys
}
