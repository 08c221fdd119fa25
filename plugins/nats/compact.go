package taskiqnats

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// compactEvery is how often a listener looks for acked messages left in a
// work-queue stream.
const compactEvery = time.Minute

// compact removes, from the queue stream, the messages of each queue that
// lie at or below its consumer's ack floor: messages the consumer has acked
// and will never deliver again. In a work-queue stream an ack removes the
// message, but after an unclean restart nats-server 2.9 may keep a few of
// them stored; without this they would stay for good. Only consumers that
// deliver the whole stream (DeliverAll) are trusted: below the floor of
// another policy lie messages never delivered.
func (l *listener) compact(ctx context.Context, workQueueOnly bool) {
	ctx, cancel := l.b.reqCtx(ctx)
	defer cancel()
	s, err := l.b.js.Stream(ctx, l.b.opts.stream)
	if err != nil {
		return
	}
	info := s.CachedInfo()
	if workQueueOnly && info.Config.Retention != jetstream.WorkQueuePolicy {
		return
	}
	for _, q := range l.queues {
		ci, err := q.cons.Info(ctx)
		if err != nil || ci.Config.DeliverPolicy != jetstream.DeliverAllPolicy {
			continue
		}
		floor := ci.AckFloor.Stream
		if floor == 0 || floor < info.State.FirstSeq {
			continue
		}
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(q.subject), jetstream.WithPurgeSequence(floor+1)); err != nil {
			l.b.log.Debug("removing acked messages left in the stream failed", "queue", q.name, "error", err)
		}
	}
}

// runCompactor compacts at start and every compactEvery until the
// listener closes.
func (l *listener) runCompactor() {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(compactEvery)
		defer t.Stop()
		for {
			l.compact(l.ctx, true)
			select {
			case <-t.C:
			case <-l.ctx.Done():
				return
			}
		}
	}()
}
