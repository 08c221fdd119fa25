package inmemory

import (
	"context"
	"fmt"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Cancel writes a tombstone for the task, kept for TombstoneTTL, and tells
// every watcher.
func (b *Broker) Cancel(ctx context.Context, taskID string) error {
	if taskID == "" {
		return fmt.Errorf("cancel: empty task id")
	}
	now := b.now()
	b.mu.Lock()
	defer b.unlock()
	if b.closed {
		return fmt.Errorf("cancel: %w", sdk.ErrClosed)
	}
	for id, exp := range b.tombstones {
		if now.After(exp) {
			delete(b.tombstones, id)
		}
	}
	b.tombstones[taskID] = now.Add(TombstoneTTL)
	for w := range b.watchers {
		w.pending = append(w.pending, taskID)
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// cancelWatcher is one WatchCancels call: the ids not yet given to it
// (guarded by the broker's mutex) and its wake-up signal.
type cancelWatcher struct {
	pending []string
	wake    chan struct{}
}

// WatchCancels calls fn with the tombstones that exist now, then with each
// new one, until ctx ends or the broker closes.
func (b *Broker) WatchCancels(ctx context.Context, fn func([]string)) error {
	w := &cancelWatcher{wake: make(chan struct{}, 1)}
	now := b.now()
	b.mu.Lock()
	var current []string
	for id, exp := range b.tombstones {
		if !now.After(exp) {
			current = append(current, id)
		}
	}
	b.watchers[w] = struct{}{}
	b.unlock()
	defer func() {
		b.mu.Lock()
		delete(b.watchers, w)
		b.unlock()
	}()
	fn(current)
	for {
		select {
		case <-w.wake:
			b.mu.Lock()
			ids := w.pending
			w.pending = nil
			b.unlock()
			if len(ids) > 0 {
				fn(ids)
			}
		case <-ctx.Done():
			return nil
		case <-b.done:
			return fmt.Errorf("watch cancels: %w", sdk.ErrClosed)
		}
	}
}

// Interface guards
var _ sdk.Canceller = (*Broker)(nil)
