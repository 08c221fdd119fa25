package inmemory

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// ScheduleCapabilities are the schedule source features this plugin
// implements.
var ScheduleCapabilities = []string{sdk.CapScheduleWrite, sdk.CapScheduleState}

// ScheduleSource is an in-memory sdk.ScheduleSource with the scheduler's
// state (sdk.ScheduleState). Like the broker it lives in the plugin process
// and dies with it: for development and tests. A one-shot schedule is
// deleted once it was sent, as taskiq's sources do.
type ScheduleSource struct {
	now func() time.Time

	mu     sync.Mutex
	byID   map[string]sdk.Schedule
	last   map[string]time.Time
	leases map[string]lease
}

type lease struct {
	holder string
	until  time.Time
}

// NewScheduleSource returns an empty source reading time from now.
func NewScheduleSource(now func() time.Time) *ScheduleSource {
	return &ScheduleSource{now: now, byID: map[string]sdk.Schedule{}, last: map[string]time.Time{}, leases: map[string]lease{}}
}

// Schedules returns the schedules ordered by id.
func (s *ScheduleSource) Schedules(context.Context) ([]sdk.Schedule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sdk.Schedule, 0, len(s.byID))
	for _, sc := range s.byID {
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Add stores s, replacing a schedule with its id.
func (s *ScheduleSource) Add(_ context.Context, sc sdk.Schedule) error {
	if sc.ID == "" {
		return fmt.Errorf("add schedule: the schedule id is empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[sc.ID] = sc
	return nil
}

// Delete removes a schedule and its state.
func (s *ScheduleSource) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[id]; !ok {
		return fmt.Errorf("%w: %q", sdk.ErrScheduleNotFound, id)
	}
	delete(s.byID, id)
	delete(s.last, id)
	return nil
}

// PreSend does nothing.
func (s *ScheduleSource) PreSend(context.Context, sdk.Schedule) error { return nil }

// PostSend deletes a one-shot schedule once it was sent.
func (s *ScheduleSource) PostSend(ctx context.Context, sc sdk.Schedule) error {
	if sc.Time.IsZero() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, sc.ID)
	return nil
}

// LastFired returns the stored last slots.
func (s *ScheduleSource) LastFired(_ context.Context, ids []string) (map[string]time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(ids))
	for _, id := range ids {
		if t, ok := s.last[id]; ok {
			out[id] = t
		}
	}
	return out, nil
}

// MarkFired keeps the later of slot and the stored slot.
func (s *ScheduleSource) MarkFired(_ context.Context, id string, slot time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slot.After(s.last[id]) {
		s.last[id] = slot
	}
	return nil
}

// AcquireLease takes or renews the lease.
func (s *ScheduleSource) AcquireLease(_ context.Context, name, holder string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	l := s.leases[name]
	if l.holder != holder && l.holder != "" && now.Before(l.until) {
		return false, nil
	}
	s.leases[name] = lease{holder: holder, until: now.Add(ttl)}
	return true, nil
}

// ReleaseLease ends the lease when holder has it.
func (s *ScheduleSource) ReleaseLease(_ context.Context, name, holder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[name].holder == holder {
		delete(s.leases, name)
	}
	return nil
}

// Close does nothing: the schedules go with the process.
func (s *ScheduleSource) Close(context.Context) error { return nil }

// Interface guards
var (
	_ sdk.ScheduleSource = (*ScheduleSource)(nil)
	_ sdk.ScheduleHooks  = (*ScheduleSource)(nil)
	_ sdk.ScheduleState  = (*ScheduleSource)(nil)
)
