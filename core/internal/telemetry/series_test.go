package telemetry

import (
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The last-series shortcut returns the series of the names asked for,
// whatever was asked before, and a name past the bound still gets Other's.
func TestGetReturnsTheSeriesOfItsNames(t *testing.T) {
	r, err := New(Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < maxValues; i++ {
		r.get("t"+strconv.Itoa(i), "q")
	}
	for _, c := range []struct{ task, queue, wantTask, wantQueue string }{
		{"t1", "q", "t1", "q"},
		{"t1", "q", "t1", "q"},
		{"t2", "", "t2", DefaultQueue},
		{"t2", DefaultQueue, "t2", DefaultQueue},
		{"past-the-bound", "q", Other, "q"},
		{"past-the-bound", "q", Other, "q"},
		{"t1", "q", "t1", "q"},
	} {
		s := r.get(c.task, c.queue)
		if s.task != c.wantTask || s.queue != c.wantQueue {
			t.Fatalf("get(%q, %q) is the series of (%q, %q), want (%q, %q)", c.task, c.queue, s.task, s.queue, c.wantTask, c.wantQueue)
		}
	}
	if a, b := r.get("t3", "q"), r.get("t3", "q"); a != b {
		t.Fatal("two gets of one series returned two series")
	}
}
