package core

import (
	"context"
	"fmt"
	"sync"
)

// State is shared by event handlers, dependency providers and tasks of one
// App, like taskiq's TaskiqState. Keys are strings; values are anything.
type State struct {
	mu     sync.RWMutex
	values map[string]any
}

func newState() *State { return &State{values: map[string]any{}} }

// Set stores a value.
func (s *State) Set(key string, v any) {
	s.mu.Lock()
	s.values[key] = v
	s.mu.Unlock()
}

// Get returns a value.
func (s *State) Get(key string) (any, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.values[key]
	return v, ok
}

// StateValue returns a typed value from the state.
func StateValue[T any](s *State, key string) (T, bool) {
	v, ok := s.Get(key)
	t, typed := v.(T)
	return t, ok && typed
}

// Event is a lifecycle moment of a client or worker.
type Event string

// Events, as in taskiq.
const (
	EventClientStartup  Event = "client_startup"
	EventClientShutdown Event = "client_shutdown"
	EventWorkerStartup  Event = "worker_startup"
	EventWorkerShutdown Event = "worker_shutdown"
)

// EventHandler runs on an event with the App's shared state.
type EventHandler func(ctx context.Context, s *State) error

// OnEvent registers a handler. Startup handlers run in registration order;
// an error from one stops the startup. Shutdown handlers all run, in
// reverse order.
func (a *App) OnEvent(e Event, h EventHandler) {
	a.mu.Lock()
	a.events[e] = append(a.events[e], h)
	a.mu.Unlock()
}

func (a *App) fire(ctx context.Context, e Event) error {
	a.mu.RLock()
	hs := append([]EventHandler(nil), a.events[e]...)
	a.mu.RUnlock()
	shutdown := e == EventClientShutdown || e == EventWorkerShutdown
	var firstErr error
	for i := range hs {
		h := hs[i]
		if shutdown {
			h = hs[len(hs)-1-i]
		}
		if err := h(ctx, a.state); err != nil {
			if !shutdown {
				return fmt.Errorf("taskiq: %s handler: %w", e, err)
			}
			if firstErr == nil {
				firstErr = fmt.Errorf("taskiq: %s handler: %w", e, err)
			}
		}
	}
	return firstErr
}
