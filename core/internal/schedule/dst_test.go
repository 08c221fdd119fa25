package schedule

import (
	"testing"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func mustCompile(t *testing.T, s sdk.Schedule) *Spec {
	t.Helper()
	if s.ID == "" {
		s.ID = "s"
	}
	if s.TaskName == "" {
		s.TaskName = "t"
	}
	sp, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestCronDST: a wall-clock time that does not exist fires at the first
// instant after the gap; one that occurs twice fires once, at its first
// occurrence.
func TestCronDST(t *testing.T) {
	cases := []struct {
		name, zone, cron, after string
		want                    []string
	}{
		{"berlin spring: 02:30 does not exist, fires at 03:00 CEST", "Europe/Berlin", "30 2 * * *", "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{"berlin spring: the skipped hour's slots collapse into one", "Europe/Berlin", "*/30 * * * *", "2026-03-29T00:00:00Z",
			[]string{"2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"}},
		{"berlin fall: 02:30 occurs twice, fires at the first", "Europe/Berlin", "30 2 * * *", "2026-10-24T12:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"berlin fall: the repeated hour fires once", "Europe/Berlin", "*/30 * * * *", "2026-10-25T00:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z"}},
		{"new york spring: 02:00 does not exist, fires at 03:00 EDT", "America/New_York", "0 2 * * *", "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"}},
		{"new york spring, seconds field: hourly across the gap", "America/New_York", "0 0 * * * *", "2026-03-08T06:00:00Z",
			[]string{"2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"}},
		{"new york fall: 01:30 occurs twice, fires at the first", "America/New_York", "30 1 * * *", "2026-10-31T12:00:00Z",
			[]string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"new york fall, seconds field: every 20 minutes at :10 through the repeated hour", "America/New_York", "10 */20 1 * * *", "2026-11-01T05:00:00Z",
			[]string{"2026-11-01T05:00:10Z", "2026-11-01T05:20:10Z", "2026-11-01T05:40:10Z", "2026-11-02T06:00:10Z"}},
		{"utc has no transitions", "", "0 3 * * *", "2026-03-29T00:00:00Z",
			[]string{"2026-03-29T03:00:00Z", "2026-03-30T03:00:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustCompile(t, sdk.Schedule{Cron: c.cron, Timezone: c.zone})
			got := s.NextN(utc(c.after), len(c.want))
			if len(got) != len(c.want) {
				t.Fatalf("got %d slots %v, want %v", len(got), got, c.want)
			}
			for i, w := range c.want {
				if !got[i].Equal(utc(w)) {
					t.Errorf("slot %d = %s (%s local), want %s", i, got[i].UTC().Format(time.RFC3339),
						got[i].In(s.Location()).Format("15:04:05 MST"), w)
				}
			}
		})
	}
}

// TestIntervalDST: intervals are elapsed time anchored to the epoch: across
// a transition they neither skip nor repeat, whatever the wall clock does.
func TestIntervalDST(t *testing.T) {
	cases := []struct {
		name, zone, from string
		interval, phase  time.Duration
		n                int
		wantLocal        []string // wall clock of each slot in zone
	}{
		{"berlin spring, hourly", "Europe/Berlin", "2026-03-28T23:30:00Z", time.Hour, 0, 4,
			[]string{"01:00 CET", "03:00 CEST", "04:00 CEST", "05:00 CEST"}},
		{"berlin fall, hourly: 02:00 twice, each an hour apart", "Europe/Berlin", "2026-10-24T23:30:00Z", time.Hour, 0, 4,
			[]string{"02:00 CEST", "02:00 CET", "03:00 CET", "04:00 CET"}},
		{"new york spring, 30 min with a 10 min phase", "America/New_York", "2026-03-08T06:30:00Z", 30 * time.Minute, 10 * time.Minute, 4,
			[]string{"01:40 EST", "03:10 EDT", "03:40 EDT", "04:10 EDT"}},
		{"new york fall, daily at 06:00 UTC", "America/New_York", "2026-10-30T07:00:00Z", 24 * time.Hour, 6 * time.Hour, 2,
			[]string{"02:00 EDT", "01:00 EST"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustCompile(t, sdk.Schedule{Interval: c.interval, Phase: c.phase, Timezone: c.zone})
			got := s.NextN(utc(c.from), c.n)
			if len(got) != c.n {
				t.Fatalf("got %d slots", len(got))
			}
			for i, g := range got {
				if l := g.In(s.Location()).Format("15:04 MST"); l != c.wantLocal[i] {
					t.Errorf("slot %d at %s local, want %s", i, l, c.wantLocal[i])
				}
				if i > 0 && g.Sub(got[i-1]) != c.interval {
					t.Errorf("slot %d is %s after the previous one, want %s", i, g.Sub(got[i-1]), c.interval)
				}
				if (g.Unix()-int64(c.phase/time.Second))%int64(c.interval/time.Second) != 0 {
					t.Errorf("slot %s is not anchored to the epoch plus the phase", g)
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	cases := map[string]sdk.Schedule{
		"cron":           {ID: "a", TaskName: "t"},
		"two kinds":      {ID: "a", TaskName: "t", Cron: "* * * * *", Interval: time.Second},
		"bad cron":       {ID: "a", TaskName: "t", Cron: "61 * * * *"},
		"every":          {ID: "a", TaskName: "t", Cron: "@every 1m"},
		"zone":           {ID: "a", TaskName: "t", Cron: "* * * * *", Timezone: "Mars/Olympus"},
		"sub-second":     {ID: "a", TaskName: "t", Interval: 1500 * time.Millisecond},
		"catchup":        {ID: "a", TaskName: "t", Interval: time.Second, Catchup: "some"},
		"overlap":        {ID: "a", TaskName: "t", Interval: time.Second, Overlap: "never"},
		"end before":     {ID: "a", TaskName: "t", Interval: time.Second, StartAt: utc("2026-01-02T00:00:00Z"), EndAt: utc("2026-01-01T00:00:00Z")},
		"no task":        {ID: "a", Interval: time.Second},
		"negative phase": {ID: "a", TaskName: "t", Interval: time.Minute, Phase: -time.Second},
	}
	for name, s := range cases {
		if _, err := Compile(s); err == nil {
			t.Errorf("%s: Compile accepted %+v", name, s)
		}
	}
	for _, ok := range []sdk.Schedule{
		{ID: "five", TaskName: "t", Cron: "*/5 * * * *"},
		{ID: "six", TaskName: "t", Cron: "*/5 * * * * *"},
		{ID: "daily", TaskName: "t", Cron: "@daily", CronOffset: "+02:00"},
		{ID: "at", TaskName: "t", Time: utc("2026-01-01T00:00:00Z")},
	} {
		if _, err := Compile(ok); err != nil {
			t.Errorf("%s: %v", ok.ID, err)
		}
	}
}

func TestCronOffsetFixedZone(t *testing.T) {
	s := mustCompile(t, sdk.Schedule{Cron: "0 9 * * *", CronOffset: "+02:00"})
	got, _ := s.Next(utc("2026-06-01T00:00:00Z"))
	if !got.Equal(utc("2026-06-01T07:00:00Z")) {
		t.Fatalf("got %s", got)
	}
}

func TestStartEndAndAt(t *testing.T) {
	s := mustCompile(t, sdk.Schedule{Interval: time.Minute,
		StartAt: utc("2026-01-01T00:10:00Z"), EndAt: utc("2026-01-01T00:12:00Z")})
	got := s.NextN(utc("2026-01-01T00:00:00Z"), 10)
	want := []string{"2026-01-01T00:10:00Z", "2026-01-01T00:11:00Z", "2026-01-01T00:12:00Z"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if !got[i].Equal(utc(want[i])) {
			t.Errorf("slot %d = %s", i, got[i])
		}
	}
	at := mustCompile(t, sdk.Schedule{Time: utc("2026-01-01T00:05:00Z")})
	if n := at.NextN(utc("2026-01-01T00:00:00Z"), 5); len(n) != 1 {
		t.Fatalf("one shot gave %v", n)
	}
	if _, ok := at.Next(utc("2026-01-01T00:05:00Z")); ok {
		t.Fatal("one shot fires again")
	}
}

func TestJitterIsFixedPerSlot(t *testing.T) {
	s := mustCompile(t, sdk.Schedule{Interval: time.Minute, Jitter: 10 * time.Second})
	slot := utc("2026-01-01T00:05:00Z")
	j := s.JitterFor(slot)
	if j < 0 || j >= 10*time.Second || j != s.JitterFor(slot) {
		t.Fatalf("jitter %s", j)
	}
	differs := false
	for i := 1; i < 20; i++ {
		if s.JitterFor(slot.Add(time.Duration(i)*time.Minute)) != j {
			differs = true
		}
	}
	if !differs {
		t.Fatal("every slot has the same jitter")
	}
}
