package taskiqredis

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Running records (list mode). A popped message exists only in its worker,
// so the list listener leaves a record of each message it hands out, for
// the inspector's "running" state and count:
//
//	<queue key>:running      hash: "<consumer>|<delivery id>" -> "<popped at ms>|<body>"
//	<queue key>:running:exp  sorted set: the same fields, scored by expiry (ms)
//
// The records are written by the script that pops the messages (popScript),
// in the pop's round trip, and removed when the delivery is settled. A
// record is a lease: it expires lease after it was written unless its
// listener renews it (every lease/3, while the delivery is held), so a
// worker that dies leaves records that stop counting at once when their
// lease runs out and are deleted by the next sweep (sweepRunningScript,
// run by every list listener of the queue at each renewal, and by the
// inspector before it lists). A record is only bookkeeping: the message
// itself is still at most once, lost with a worker that dies.

func (b *broker) runningKey(queue string) string    { return b.streamKey(queue) + ":running" }
func (b *broker) runningExpKey(queue string) string { return b.streamKey(queue) + ":running:exp" }

// popScript pops up to ARGV[1] messages from the first non-empty list and
// records each as running.
//
// KEYS three per queue, in the order to try: list, running hash, expiry
// set. ARGV[1] count; ARGV[2] field prefix ("<consumer>|"); ARGV[3] first
// delivery id (the i-th message gets ARGV[3]+i-1); ARGV[4] now ms; ARGV[5]
// expiry ms; ARGV[6] "1" when ARGV[7] is a message BRPOP already took from
// the first list (it is recorded and counted first).
// Returns {queue number (1-based), message...}, or {} when every list is
// empty.
var popScript = redis.NewScript(`
local n, seq = tonumber(ARGV[1]), tonumber(ARGV[3])
for q = 1, #KEYS, 3 do
  local vals = {}
  if q == 1 and ARGV[6] == '1' then vals[1] = ARGV[7] end
  if n > #vals then
    local more = redis.call('RPOP', KEYS[q], n - #vals)
    if more then
      for _, v in ipairs(more) do vals[#vals + 1] = v end
    end
  end
  if #vals > 0 then
    local out = {(q + 2) / 3}
    for i, v in ipairs(vals) do
      local f = ARGV[2] .. string.format('%d', seq + i - 1)
      redis.call('HSET', KEYS[q + 1], f, ARGV[4] .. '|' .. v)
      redis.call('ZADD', KEYS[q + 2], ARGV[5], f)
      out[#out + 1] = v
    end
    return out
  end
end
return {}
`)

// sweepRunningScript deletes up to ARGV[2] records whose lease ran out.
//
// KEYS[1] running hash; KEYS[2] expiry set. ARGV[1] now ms; ARGV[2] limit.
// Returns how many it deleted.
var sweepRunningScript = redis.NewScript(`
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #gone == 0 then return 0 end
redis.call('HDEL', KEYS[1], unpack(gone))
redis.call('ZREM', KEYS[2], unpack(gone))
return #gone
`)

// sweepRunningLimit bounds the records one sweep deletes.
const sweepRunningLimit = 500

// popRecorded runs popScript over qs (all in one call, or one queue at a
// time in a cluster, where a script cannot span slots) and returns the
// queue it popped from and the deliveries. first, when not nil, is the
// message BRPOP took from qs[0].
func (l *listListener) popRecorded(ctx context.Context, qs []*queueSpec, n int, first *string) (*queueSpec, []sdk.Delivery, error) {
	groups := [][]*queueSpec{qs}
	if l.b.opts.clusterHashes && len(qs) > 1 {
		groups = groups[:0]
		for _, q := range qs {
			groups = append(groups, []*queueSpec{q})
		}
	}
	now := l.b.now()
	for gi, g := range groups {
		keys := make([]string, 0, 3*len(g))
		for _, q := range g {
			keys = append(keys, q.key, l.b.runningKey(q.name), l.b.runningExpKey(q.name))
		}
		seq := l.seq.Add(uint64(n)) - uint64(n) + 1
		args := []any{n, l.consumer + "|", seq, now.UnixMilli(), now.Add(l.b.opts.lease).UnixMilli(), "0", ""}
		if first != nil && gi == 0 {
			args[5], args[6] = "1", *first
		}
		res, err := popScript.Run(ctx, l.b.client, keys, args...).Slice()
		if err != nil {
			return nil, nil, err
		}
		if len(res) < 2 {
			continue
		}
		qi, _ := res[0].(int64)
		if qi < 1 || int(qi) > len(g) {
			continue
		}
		vals := make([]string, 0, len(res)-1)
		for _, v := range res[1:] {
			s, _ := v.(string)
			vals = append(vals, s)
		}
		return g[qi-1], l.deliverFrom(g[qi-1], vals, seq), nil
	}
	return nil, nil, nil
}

// recordField is the running record of a delivery of this listener.
func (l *listListener) recordField(deliveryID string) string { return l.consumer + "|" + deliveryID }

// unrecord removes the running records of settled deliveries, one pipeline
// for the batch. A failure is logged: the records expire with their lease.
func (l *listListener) unrecord(ctx context.Context, hs map[*queueSpec][]string) {
	if len(hs) == 0 {
		return
	}
	pipe := l.b.client.Pipeline()
	for q, fields := range hs {
		pipe.HDel(ctx, l.b.runningKey(q.name), fields...)
		pipe.ZRem(ctx, l.b.runningExpKey(q.name), toAny(fields)...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		l.b.log.Debug("removing running records failed; they expire with their lease", "error", wrapErr("settle", l.b.addr, err))
	}
}

// runRenewer renews the records of the deliveries this listener holds
// every lease/3 and sweeps the expired records of its queues.
func (l *listListener) runRenewer() {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		every := max(l.b.opts.lease/3, time.Millisecond)
		for sleep(l.ctx, every) {
			l.renew(l.ctx)
		}
	}()
}

func (l *listListener) renew(ctx context.Context) {
	byQueue := map[*queueSpec][]any{}
	l.heldMu.Lock()
	for id, h := range l.held {
		byQueue[h.queue] = append(byQueue[h.queue], l.recordField(id))
	}
	l.heldMu.Unlock()
	now := l.b.now()
	exp := float64(now.Add(l.b.opts.lease).UnixMilli())
	pipe := l.b.client.Pipeline()
	for q, fields := range byQueue {
		zs := make([]redis.Z, len(fields))
		for i, f := range fields {
			zs[i] = redis.Z{Score: exp, Member: f}
		}
		pipe.ZAddXX(ctx, l.b.runningExpKey(q.name), zs...)
	}
	for _, q := range l.queues {
		sweepRunningScript.Run(ctx, pipe, []string{l.b.runningKey(q.name), l.b.runningExpKey(q.name)}, now.UnixMilli(), sweepRunningLimit)
	}
	if _, err := pipe.Exec(ctx); err != nil && ctx.Err() == nil {
		l.b.log.Debug("renewing running records failed", "error", wrapErr("renew running records", l.b.addr, err))
	}
}

// runningScanner lists a list-mode queue's running records whose lease has
// not run out, soonest expiry first; the cursor is an offset. Expired
// records are swept first.
func (b *broker) runningScanner(queue string) scanner {
	hash, exp := b.runningKey(queue), b.runningExpKey(queue)
	return func(ctx context.Context, cursor string, n int) ([]scanned, string, error) {
		off, err := offsetCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		now := b.now()
		if off == 0 {
			if err := sweepRunningScript.Run(ctx, b.client, []string{hash, exp}, now.UnixMilli(), sweepRunningLimit).Err(); err != nil {
				return nil, "", err
			}
		}
		zs, err := b.client.ZRangeByScoreWithScores(ctx, exp, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(now.UnixMilli(), 10),
			Max: "+inf", Offset: int64(off), Count: int64(n)}).Result()
		if err != nil && err != redis.Nil {
			return nil, "", err
		}
		if len(zs) == 0 {
			return nil, "", nil
		}
		fields := make([]string, len(zs))
		for i, z := range zs {
			fields[i], _ = z.Member.(string)
		}
		vals, err := b.client.HMGet(ctx, hash, fields...).Result()
		if err != nil && err != redis.Nil {
			return nil, "", err
		}
		out := make([]scanned, 0, len(zs))
		for i, z := range zs {
			v, ok := vals[i].(string)
			if !ok {
				continue // settled meanwhile
			}
			_, body, _ := strings.Cut(v, "|") // popped at (ms), body
			info := sdk.MessageInfo{Ref: fields[i], Queue: queue, State: sdk.StateRunning, Body: []byte(body), Attempt: 1,
				LeaseDeadline: time.UnixMilli(int64(z.Score))}
			if j := strings.LastIndexByte(fields[i], '|'); j > 0 {
				info.LeaseHolder = fields[i][:j]
			}
			out = append(out, scanned{info: info, after: strconv.Itoa(off + i + 1)})
		}
		next := ""
		if len(zs) == n {
			next = strconv.Itoa(off + n)
		}
		return out, next, nil
	}
}
