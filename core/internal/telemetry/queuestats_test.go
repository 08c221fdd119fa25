package telemetry

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestQueueGaugesAreCachedAndRefreshedOnTheTick: a scrape reads the figures
// last read, never the broker; the figures change only when the refresh
// interval passes (an injected tick), and a failed read keeps the last ones.
func TestQueueGaugesAreCachedAndRefreshedOnTheTick(t *testing.T) {
	defer goleak.VerifyNone(t)
	reg := prometheus.NewRegistry()
	rec, err := New(Options{Registerer: reg})
	require.NoError(t, err)

	var mu sync.Mutex
	reads := 0
	depth := int64(5)
	var fail bool
	readDone := make(chan struct{}, 4)
	read := func(context.Context) ([]QueueStat, error) {
		mu.Lock()
		defer func() { mu.Unlock(); readDone <- struct{}{} }()
		reads++
		if fail {
			return nil, errors.New("inspector down")
		}
		return []QueueStat{{Broker: "default", Queue: "taskiq", Depth: depth, OldestAge: 2 * time.Second}}, nil
	}
	tick := make(chan time.Time)
	asked := make(chan time.Duration, 4)
	after := func(d time.Duration) <-chan time.Time { asked <- d; return tick }
	w, err := rec.WatchQueues(reg, read, time.Minute, after, nil)
	require.NoError(t, err)
	defer w.Shutdown()

	<-readDone // the first read, at start
	require.Equal(t, time.Minute, <-asked)
	for i := 0; i < 3; i++ {
		require.Equal(t, 5.0, gauge(t, reg, "taskiq_queue_depth"), "scrape %d", i)
	}
	mu.Lock()
	require.Equal(t, 1, reads, "scrapes never read the broker")
	depth = 9
	mu.Unlock()

	tick <- time.Now()
	<-readDone
	<-asked // the next wait has begun: the figures are stored
	require.Equal(t, 9.0, gauge(t, reg, "taskiq_queue_depth"))
	require.Equal(t, 2.0, gauge(t, reg, "taskiq_queue_oldest_age_seconds"))

	mu.Lock()
	fail = true
	mu.Unlock()
	tick <- time.Now()
	<-readDone
	<-asked
	require.Equal(t, 9.0, gauge(t, reg, "taskiq_queue_depth"), "a failed read keeps the last figures")
}

func TestNilRecorderRecordsNothing(t *testing.T) {
	rec, err := New(Options{})
	require.NoError(t, err)
	require.Nil(t, rec)
	ctx, snd := rec.StartSend(context.Background(), nil)
	snd.End(nil)
	_, run := rec.StartRun(ctx, nil, 1)
	run.Started()
	run.Executed(time.Second, nil)
	run.End(Succeeded)
	require.Nil(t, run.LogFields())
	require.False(t, rec.Tracing())
}

func TestBoundedLabelValues(t *testing.T) {
	var b boundedSet
	for i := 0; i < maxValues; i++ {
		require.Equal(t, string(rune('a'+i%26))+time.Duration(i).String(), b.value(string(rune('a'+i%26))+time.Duration(i).String()))
	}
	require.Equal(t, Other, b.value("one too many"))
	require.Equal(t, "a0s", b.value("a0s"), "values seen before keep their name")
}

// gauge gathers reg and returns the one value of the gauge family name.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() == name {
			require.Len(t, f.Metric, 1)
			require.Equal(t, "default", f.Metric[0].Label[0].GetValue())
			require.Equal(t, "taskiq", f.Metric[0].Label[1].GetValue())
			return f.Metric[0].Gauge.GetValue()
		}
	}
	t.Fatalf("no family %s", name)
	return 0
}
