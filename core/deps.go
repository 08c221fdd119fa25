package core

import (
	"context"
	"errors"
	"fmt"
	"reflect"
)

// ErrNoProvider is returned by Use for a type nobody provides.
var ErrNoProvider = errors.New("no provider registered")

type providerKey = reflect.Type

// provider builds one dependency for one task run.
type provider func(ctx context.Context) (any, func(), error)

// Provide registers how to build a T for a task (taskiq's TaskiqDepends): fn
// runs at most once per task run, the first time the task asks for a T with
// Use; the cleanup it returns (may be nil) runs after the task, in reverse
// order of creation. fn may itself Use other dependencies.
func Provide[T any](app *App, fn func(ctx context.Context) (T, func(), error)) {
	app.mu.Lock()
	defer app.mu.Unlock()
	app.providers[reflect.TypeFor[T]()] = func(ctx context.Context) (any, func(), error) {
		return fn(ctx)
	}
}

// Use returns the T for the current task run, building it on first use. It
// fails outside a task or when no provider is registered for T.
func Use[T any](ctx context.Context) (T, error) {
	var zero T
	tc := ContextFrom(ctx)
	if tc == nil {
		return zero, errors.New("taskiq: Use called outside a task")
	}
	v, err := tc.deps.get(ctx, tc.app, reflect.TypeFor[T]())
	if err != nil {
		return zero, err
	}
	return v.(T), nil
}

// depScope holds the dependencies of one task run.
type depScope struct {
	values   map[reflect.Type]any
	building map[reflect.Type]bool
	cleanups []func()
}

func (s *depScope) get(ctx context.Context, app *App, t reflect.Type) (any, error) {
	if v, ok := s.values[t]; ok {
		return v, nil
	}
	if s.building[t] {
		return nil, fmt.Errorf("taskiq: dependency cycle through %s", t)
	}
	app.mu.RLock()
	p, ok := app.providers[t]
	app.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("taskiq: %w for %s (register one with core.Provide)", ErrNoProvider, t)
	}
	if s.values == nil {
		s.values, s.building = map[reflect.Type]any{}, map[reflect.Type]bool{}
	}
	s.building[t] = true
	v, cleanup, err := p(ctx)
	delete(s.building, t)
	if err != nil {
		return nil, fmt.Errorf("taskiq: provide %s: %w", t, err)
	}
	s.values[t] = v
	if cleanup != nil {
		s.cleanups = append(s.cleanups, cleanup)
	}
	return v, nil
}

func (s *depScope) close() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
}
