package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelaysDoubleUpToTheCapAndReset(t *testing.T) {
	b := New(10*time.Millisecond, 50*time.Millisecond)
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
	}
	want := []time.Duration{10, 20, 40, 50, 50}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != 10*time.Millisecond {
		t.Fatalf("after Reset: %v, want 10ms", d)
	}
}

func TestWaitUsesItsClockAndStopsWithTheContext(t *testing.T) {
	var asked []time.Duration
	fired := make(chan time.Time, 1)
	b := New(time.Second, time.Minute).WithAfter(func(d time.Duration) <-chan time.Time {
		asked = append(asked, d)
		return fired
	})
	fired <- time.Time{}
	if !b.Wait(context.Background()) {
		t.Fatal("Wait returned false although its timer fired")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b.Wait(ctx) {
		t.Fatal("Wait returned true although its context had ended")
	}
	if len(asked) != 2 || asked[0] != time.Second || asked[1] != 2*time.Second {
		t.Fatalf("waited for %v, want [1s 2s]", asked)
	}
}
