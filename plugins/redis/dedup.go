package taskiqredis

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// dedupScript enqueues a message unless its task id was enqueued within the
// dedup window (capability "dedup"): the check, the write and the marker
// (SET NX PX) happen in one script, so two schedulers kicking the same slot
// at the same moment leave one message. The write comes before the marker:
// a write Redis refuses (over maxmemory) leaves no marker behind, and the
// kick can be retried.
//
// In stream mode the message is indexed too (taskindex.go).
//
// KEYS[1] marker; KEYS[2] stream, list or delayed set; KEYS[3] task-id
// index. ARGV[1] window ms; ARGV[2] "xadd", "lpush" or "zadd"; ARGV[3]
// body (for zadd: the member); ARGV[4] maxlen (xadd) or score (zadd);
// ARGV[5] task id to index ("" = none); ARGV[6] the index value of a zadd.
// Returns 1 when enqueued, 0 when dropped as a duplicate.
var dedupScript = redis.NewScript(luaXAdd + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[2] == 'xadd' then
  local id = xadd(KEYS[2], ARGV[4], ARGV[3], '0')
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], ARGV[5], 's|' .. id) end
elseif ARGV[2] == 'lpush' then
  redis.call('LPUSH', KEYS[2], ARGV[3])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], ARGV[5], ARGV[6]) end
end
redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
return 1
`)

// dedupKey is the marker of a task id: next to the queue's keys (one hash
// slot in a cluster).
func (b *broker) dedupKey(queue, taskID string) string {
	return b.streamKey(queue) + ":dedup:" + taskID
}

// kickOnce queues the dedup script for m on pipe. Eval sends the script's
// source: a pipeline cannot fall back from EVALSHA on NOSCRIPT, and kicks
// with a window are a scheduler's few per slot.
func (b *broker) kickOnce(ctx context.Context, pipe redis.Pipeliner, m sdk.Outgoing, now time.Time) {
	window := max(m.DedupWindow.Milliseconds(), 1)
	marker := b.dedupKey(m.Queue, m.TaskID)
	idx, tid := b.idsKey(m.Queue), ""
	if b.opts.mode == modeStream {
		tid = bodyTaskID(m.Body)
	}
	switch {
	case m.Delay > 0:
		tag, member := delayedMemberTag(0, m.Body)
		due := now.Add(m.Delay).UnixMilli()
		dedupScript.Eval(ctx, pipe, []string{marker, b.delayedKey(m.Queue), idx}, window, "zadd",
			member, due, tid, idxDelayed(due, tag))
	case b.opts.mode == modeList:
		dedupScript.Eval(ctx, pipe, []string{marker, b.streamKey(m.Queue), idx}, window, "lpush", m.Body, 0, "", "")
	default:
		dedupScript.Eval(ctx, pipe, []string{marker, b.streamKey(m.Queue), idx}, window, "xadd", m.Body, b.opts.maxlen, tid, "")
	}
}
