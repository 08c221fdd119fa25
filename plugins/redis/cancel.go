package taskiqredis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Cancellation: a tombstone is a member of the sorted set
// "<queue>:cancelled" (the broker's default queue) scored by its expiry
// (cancel_ttl), so it survives every worker's restart; each new one is
// also published on the channel "<queue>:cancel" so running tasks are
// cancelled at once. A watcher subscribes first, then reads the set, and
// re-reads it every cancelResync, so a notice lost while its connection
// was down still arrives.

// cancelResync is how often a watcher re-reads the tombstones.
const cancelResync = 10 * time.Second

func (b *broker) cancelledKey() string  { return b.nsKey("cancelled") }
func (b *broker) cancelChannel() string { return b.nsKey("cancel") }

// Cancel writes the task's tombstone, drops expired ones and publishes it,
// in one round trip.
func (b *broker) Cancel(ctx context.Context, taskID string) error {
	if taskID == "" {
		return fmt.Errorf("redis cancel: empty task id")
	}
	now := b.now()
	pipe := b.client.TxPipeline()
	pipe.ZAdd(ctx, b.cancelledKey(), redis.Z{Score: unixMilli(now.Add(b.opts.cancelTTL)), Member: taskID})
	pipe.ZRemRangeByScore(ctx, b.cancelledKey(), "-inf", strconv.FormatInt(now.UnixMilli(), 10))
	pipe.Publish(ctx, b.cancelChannel(), taskID)
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapErr("cancel", b.addr, err)
	}
	return nil
}

// WatchCancels calls fn with the live tombstones, then with each new one.
func (b *broker) WatchCancels(ctx context.Context, fn func([]string)) error {
	sub := b.client.Subscribe(ctx, b.cancelChannel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return wrapErr("watch cancels (SUBSCRIBE)", b.addr, err)
	}
	seen := map[string]time.Time{}
	first := true
	resync := func() error {
		now := b.now()
		zs, err := b.client.ZRangeByScoreWithScores(ctx, b.cancelledKey(), &redis.ZRangeBy{
			Min: strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf"}).Result()
		if err != nil {
			return err
		}
		var fresh []string
		for _, z := range zs {
			id, _ := z.Member.(string)
			if _, ok := seen[id]; !ok {
				fresh = append(fresh, id)
			}
			seen[id] = time.UnixMilli(int64(z.Score))
		}
		for id, exp := range seen {
			if now.After(exp) {
				delete(seen, id)
			}
		}
		if len(fresh) > 0 || first {
			first = false
			fn(fresh)
		}
		return nil
	}
	if err := resync(); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return wrapErr("watch cancels (ZRANGE)", b.addr, err)
	}
	ch := sub.Channel()
	t := time.NewTicker(cancelResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return fmt.Errorf("redis watch cancels: %w", sdk.ErrClosed)
			}
			if _, dup := seen[m.Payload]; !dup {
				seen[m.Payload] = b.now().Add(b.opts.cancelTTL)
				fn([]string{m.Payload})
			}
		case <-t.C:
			if err := resync(); err != nil && ctx.Err() == nil {
				b.log.Warn("re-reading the cancellation tombstones failed; retrying", "error", wrapErr("watch cancels", b.addr, err))
			}
		}
	}
}

// Interface guards
var _ sdk.Canceller = (*broker)(nil)
