package schedule

import (
	"testing"
	"time"
)

func TestFromLabel(t *testing.T) {
	label := []any{
		map[string]any{"cron": "*/5 * * * *", "cron_offset": "Europe/Berlin", "args": []any{1}, "schedule_id": "five"},
		map[string]any{"interval": 30, "kwargs": map[string]any{"x": true}, "labels": map[string]any{"queue_name": "low"}},
		map[string]any{"time": "2026-06-01T12:00:00+02:00"},
		map[string]any{"cron": "0 * * * *", "cron_offset": 7200},
	}
	got, err := FromLabel("app:job", label)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].ID != "five" || got[0].CronOffset != "Europe/Berlin" || string(got[0].Args[0]) != "1" {
		t.Fatalf("%+v", got)
	}
	if got[1].Interval != 30*time.Second || got[1].Labels["queue_name"] != "low" || got[1].ID == "" {
		t.Fatalf("%+v", got[1])
	}
	again, _ := FromLabel("app:job", label)
	if again[1].ID != got[1].ID {
		t.Fatal("an entry without schedule_id must get the same id every time")
	}
	if !got[2].Time.Equal(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)) || got[3].CronOffset != "+02:00" {
		t.Fatalf("%+v %+v", got[2], got[3])
	}
	for _, s := range got {
		if _, err := Compile(s); err != nil {
			t.Errorf("%s: %v", s.ID, err)
		}
	}
	if _, err := FromLabel("x", "not a list"); err == nil {
		t.Fatal("a label that is not a list was accepted")
	}
}
