package core

import (
	"errors"
	"sync"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// keeper holds the settlements a worker could not send because its delivery
// stream broke (the broker plugin process died, say), for a broker whose
// delivery ids survive a restart of its plugin (sdk.CapStableIDs). They go
// out on the next stream that opens; a settlement failing on an old stream
// while a newer one is open goes straight to the newer one. Without the
// capability nothing is kept: the broker redelivers those messages.
type keeper struct {
	mu   sync.Mutex
	cur  *stream // the open stream; nil between streams
	kept []sdk.Settlement
}

// streamGone reports whether a settle error means the stream itself is over
// (as opposed to the broker refusing the settlement).
func streamGone(err error) bool {
	return errors.Is(err, sdk.ErrUnavailable) || errors.Is(err, sdk.ErrClosed)
}

// send sends ss on s. With stable ids, settlements that fail because s is
// over are sent on the open stream, or kept until one opens; send then
// reports success, since they are on their way.
func (w *worker) send(s *stream, ss ...sdk.Settlement) error {
	err := s.settler.Do(w.taskCtx, ss...)
	if err == nil || w.keep == nil || !streamGone(err) || w.taskCtx.Err() != nil {
		return err
	}
	for {
		w.keep.mu.Lock()
		next := w.keep.cur
		if next == nil || next == s {
			w.keep.kept = append(w.keep.kept, ss...)
			n := len(w.keep.kept)
			w.keep.mu.Unlock()
			w.app.logger.Warn("delivery stream broke before settlements were sent; keeping them for the broker's next stream",
				"broker", w.broker.name, "count", len(ss), "kept", n, "error", err)
			return nil
		}
		w.keep.mu.Unlock()
		if err = next.settler.Do(w.taskCtx, ss...); err == nil || !streamGone(err) {
			return err
		}
		s = next
	}
}

// adopt makes s the open stream and sends it the settlements kept so far,
// on a goroutine counted on wg.
func (k *keeper) adopt(w *worker, s *stream, wg *sync.WaitGroup) {
	k.mu.Lock()
	k.cur = s
	kept := k.kept
	k.kept = nil
	k.mu.Unlock()
	if len(kept) == 0 {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.send(s, kept...); err != nil {
			w.app.logger.Error("sending kept settlements failed; the broker will redeliver those messages",
				"broker", w.broker.name, "count", len(kept), "error", err)
			return
		}
		w.app.logger.Info("sent the settlements kept from the broker's previous stream", "broker", w.broker.name, "count", len(kept))
	}()
}

// broke records that s is over. The settlements s sent that its plugin
// never confirmed as applied (the process died with them) are kept too.
func (k *keeper) broke(s *stream) {
	var unapplied []sdk.Settlement
	if r, ok := s.Stream.(sdk.UnappliedReporter); ok {
		unapplied = r.Unapplied()
	}
	k.mu.Lock()
	if k.cur == s {
		k.cur = nil
	}
	k.kept = append(k.kept, unapplied...)
	k.mu.Unlock()
}

// dropped logs the settlements still kept when the worker stops.
func (k *keeper) dropped(w *worker) {
	k.mu.Lock()
	n := len(k.kept)
	k.kept = nil
	k.mu.Unlock()
	if n > 0 {
		w.app.logger.Error("the worker stops with settlements it could not send; the broker will redeliver those messages",
			"broker", w.broker.name, "count", n)
	}
}
