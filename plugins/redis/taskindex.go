package taskiqredis

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// The task-id index (stream mode): a hash per queue, "<queue key>:ids",
// mapping a task id to where its message is now:
//
//	s|<entry id>             an entry of the queue's stream (queued or running)
//	z|<due ms>|<16 hex tag>  a member of the queue's delayed set
//	d|<entry id>             an entry of the queue's dead-letter stream
//
// It lets Inspector.Task find a task named by id alone with a few O(1) or
// O(log n) commands instead of reading the queues. It is written in the
// round trip that writes the message (kickScript: XADD and HSET in one
// script), moved by the scripts that move messages (moveDueScript,
// settleScript, the inspector's actions) and deleted when the message is
// settled, so it holds about as many fields as there are live messages.
//
// An entry can go stale: a message trimmed by maxlen, settled by a Python
// worker, or deleted by hand leaves its field behind. Such fields are
// bounded two ways: a lookup verifies the place it reads (and drops the
// field when the message is not there), and every stream listener sweeps
// a chunk of its queues' index at each reclaim pass (sweepIndexScript).
// A message without a field (written by a Python producer, or before this
// index existed) is still found: the lookup falls back to reading the
// queues, as before.
//
// A message without a field (a Python producer's) is indexed the first
// time a lookup misses: backfillIndex reads the stream entries past the
// queue's backfill cursor ("<queue key>:ids:upto") and adds the fields
// they lack, so that search runs once per entry, not once per lookup.
//
// The list mode keeps no index: a list element has no id to point at.

// idsKey is the task-id index of a queue. It carries the queue's hash tag,
// so it lives in the queue's slot and scripts may touch both.
func (b *broker) idsKey(queue string) string { return b.streamKey(queue) + ":ids" }

// taskIDKey is the JSON key bodyTaskID looks for.
var taskIDKey = []byte(`"task_id"`)

// bodyTaskID is the task id of a message body as the scripts read it
// (luaTaskID): the first string value of a "task_id" key, without escapes
// ("" when there is none, or when it holds an escape: such a message is
// not indexed and found by the fallback search). The wire format and
// Python taskiq both write task_id as the first field, so the first
// "task_id" key is the message's own.
func bodyTaskID(body []byte) string {
	i := bytes.Index(body, taskIDKey)
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(body[i+len(taskIDKey):], " \t\n\r\v\f")
	if len(rest) == 0 || rest[0] != ':' {
		return ""
	}
	rest = bytes.TrimLeft(rest[1:], " \t\n\r\v\f")
	if len(rest) == 0 || rest[0] != '"' {
		return ""
	}
	rest = rest[1:]
	j := bytes.IndexAny(rest, `"\`)
	if j <= 0 || rest[j] != '"' {
		return ""
	}
	return string(rest[:j])
}

// luaTaskID defines tid(body), the Lua twin of bodyTaskID (nil for none),
// and setIdx(key, tid, value, was): set the field when it is absent or
// still holds was (a field that points at another message with the same
// task id, kicked again since, is left alone).
const luaTaskID = `
local function tid(body)
  if not body then return nil end
  local _, e = string.find(body, '"task_id"', 1, true)
  if not e then return nil end
  local v = string.match(body, '^%s*:%s*"([^"\\]*)"', e + 1)
  if v == '' then return nil end
  return v
end
local function setIdx(key, t, value, was)
  if not t then return end
  local cur = redis.call('HGET', key, t)
  if not cur or cur == was then
    redis.call('HSET', key, t, value)
  end
end
`

// kickScript adds messages to a stream and indexes them, in one step: the
// kick's round trip. The XADD comes first (see moveDueScript on why the
// first write must be the one that grows memory).
//
// KEYS[1] stream; KEYS[2] index. ARGV[1] maxlen ("0" = none); then two per
// message: task id ("" = not indexed), body. Returns how many it added.
// (XADD is called directly, not through luaXAdd: this is the hot path.)
var kickScript = redis.NewScript(`
local n, ml = 0, ARGV[1]
for i = 2, #ARGV, 2 do
  local id
  if ml == '0' then
    id = redis.call('XADD', KEYS[1], '*', 'data', ARGV[i + 1])
  else
    id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ml, '*', 'data', ARGV[i + 1])
  end
  if ARGV[i] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[i], 's|' .. id)
  end
  n = n + 1
end
return n
`)

// backfillIndexScript indexes the stream entries after the backfill cursor
// that have no field (HSETNX: a field the kick or a move wrote is kept),
// and moves the cursor past them.
//
// KEYS[1] stream; KEYS[2] index; KEYS[3] cursor. ARGV[1] count. Returns
// {entries read, fields added}.
var backfillIndexScript = redis.NewScript(luaTaskID + `
local from = redis.call('GET', KEYS[3])
local start = '-'
if from then start = '(' .. from end
local es = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', tonumber(ARGV[1]))
local added = 0
for _, e in ipairs(es) do
  local f = e[2]
  for j = 1, #f, 2 do
    if f[j] == 'data' then
      local t = tid(f[j + 1])
      if t and redis.call('HSETNX', KEYS[2], t, 's|' .. e[1]) == 1 then added = added + 1 end
    end
  end
end
if #es > 0 then redis.call('SET', KEYS[3], es[#es][1]) end
return {#es, added}
`)

// backfillChunk is how many entries one backfill step reads.
const backfillChunk = 1000

// backfillIndex indexes the entries of queue's stream past its backfill
// cursor, up to max of them, and says how many fields it added.
func (b *broker) backfillIndex(ctx context.Context, queue string, max int) (int64, error) {
	keys := []string{b.streamKey(queue), b.idsKey(queue), b.idsKey(queue) + ":upto"}
	var added int64
	for read := 0; read < max; {
		res, err := backfillIndexScript.Run(ctx, b.client, keys, backfillChunk).Int64Slice()
		if err != nil {
			return added, err
		}
		if len(res) < 2 {
			return added, nil
		}
		added += res[1]
		read += int(res[0])
		if res[0] < backfillChunk {
			break
		}
	}
	return added, nil
}

// unindexScript deletes index fields that still hold the given value: the
// field of a settled or removed message, unless the task id was kicked
// again since and the field points at the new message.
//
// KEYS[1] index; ARGV two per field: task id, value. Returns how many it
// deleted.
var unindexScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
`)

// sweepIndexScript checks one HSCAN chunk of an index and deletes the
// fields whose message is no longer where they point: a stream entry that
// is gone or was delivered and acked (kept by delete_acked = false), a
// delayed member or dead letter that is gone.
//
// KEYS[1] index; KEYS[2] stream; KEYS[3] delayed set; KEYS[4] dead-letter
// stream. ARGV[1] cursor; ARGV[2] count; ARGV[3] group; ARGV[4] "1" when
// KEYS[4] may be read (in a cluster, a dead_letter_queue of its own lies
// in another slot: its fields are then kept unchecked).
// Returns {next cursor, fields deleted, fields read}.
var sweepIndexScript = redis.NewScript(`
local function idnum(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms) or 0, tonumber(seq) or 0
end
local hasGroup, lastms, lastseq = false, -1, -1
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[2])
if type(groups) == 'table' and not groups.err then
  for _, g in ipairs(groups) do
    local name, ld = nil, nil
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then ld = g[j + 1] end
    end
    if name == ARGV[3] then
      hasGroup = true
      if ld then lastms, lastseq = idnum(ld) end
    end
  end
end
local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local kv, removed = r[2], 0
for i = 1, #kv, 2 do
  local t, v = kv[i], kv[i + 1]
  local kind, rest = string.sub(v, 1, 1), string.sub(v, 3)
  local live = true
  if kind == 's' then
    live = false
    if redis.call('XRANGE', KEYS[2], rest, rest)[1] then
      if not hasGroup then
        live = true
      elseif redis.call('XPENDING', KEYS[2], ARGV[3], rest, rest, 1)[1] then
        live = true
      else
        local ms, seq = idnum(rest)
        live = ms > lastms or (ms == lastms and seq > lastseq)
      end
    end
  elseif kind == 'z' then
    live = false
    local score, tag = string.match(rest, '^([^|]*)|(.*)$')
    if score then
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], score, score)) do
        if string.sub(m, 1, #tag + 1) == tag .. '|' then live = true end
      end
    end
  elseif kind == 'd' and ARGV[4] == '1' then
    live = redis.call('XRANGE', KEYS[4], rest, rest)[1] ~= nil
  end
  if not live then
    redis.call('HDEL', KEYS[1], t)
    removed = removed + 1
  end
end
return {r[1], removed, #kv / 2}
`)

// Index field values.
func idxStream(entryID string) string { return "s|" + entryID }
func idxDead(entryID string) string   { return "d|" + entryID }
func idxDelayed(dueMs int64, tag string) string {
	return "z|" + strconv.FormatInt(dueMs, 10) + "|" + tag
}

// pipedScript is a script call queued on a pipeline with EVALSHA. A
// pipeline cannot fall back to EVAL by itself when Redis does not know the
// script (NOSCRIPT: its first use, or after a restart or SCRIPT FLUSH), so
// retryNoScript re-sends those calls: NOSCRIPT means nothing of the script
// ran.
type pipedScript struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

func queueScript(ctx context.Context, pipe redis.Pipeliner, s *redis.Script, keys []string, args []any) *pipedScript {
	return &pipedScript{script: s, keys: keys, args: args, cmd: s.EvalSha(ctx, pipe, keys, args...)}
}

func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

// retryNoScript re-sends with EVAL, in one pipeline, the calls Redis
// refused with NOSCRIPT, and replaces their cmd. It returns the first
// error of those calls.
func retryNoScript(ctx context.Context, c redis.Cmdable, calls []*pipedScript) error {
	var redo []*pipedScript
	for _, p := range calls {
		if isNoScript(p.cmd.Err()) {
			redo = append(redo, p)
		}
	}
	if len(redo) == 0 {
		return nil
	}
	pipe := c.Pipeline()
	for _, p := range redo {
		p.cmd = p.script.Eval(ctx, pipe, p.keys, p.args...)
	}
	cmds, err := pipe.Exec(ctx)
	return pipelineErr(cmds, err, nil)
}

// scriptsErr is the first error of calls that is not NOSCRIPT (those were
// re-sent) after retryNoScript.
func scriptsErr(calls []*pipedScript) error {
	for _, p := range calls {
		if err := p.cmd.Err(); err != nil && err != redis.Nil {
			return err
		}
	}
	return nil
}

// kickArgs are kickScript's arguments for bodies: maxlen, then task id
// and body per message.
func (b *broker) kickArgs(bodies ...[]byte) []any {
	args := make([]any, 0, 1+2*len(bodies))
	args = append(args, b.opts.maxlen)
	for _, body := range bodies {
		args = append(args, bodyTaskID(body), body)
	}
	return args
}

// sweepChunk is how many index fields one sweep call checks; a pass goes on
// (up to sweepChunks calls) while a chunk finds mostly stale fields.
const (
	sweepChunk  = 200
	sweepChunks = 10
)

// sweepIndex checks the next chunks of q's index and deletes the stale
// fields; the HSCAN cursor is kept in q between passes.
func (b *broker) sweepIndex(ctx context.Context, q *queueSpec) error {
	dead := b.deadKey(q.name)
	readDead := "1"
	if !b.sameSlot(q.key, dead) {
		dead, readDead = q.key, "0"
	}
	keys := []string{b.idsKey(q.name), q.key, b.delayedKey(q.name), dead}
	for range sweepChunks {
		res, err := sweepIndexScript.Run(ctx, b.client, keys, q.idxCursor, sweepChunk, q.group, readDead).Slice()
		if err != nil {
			return err
		}
		if len(res) < 3 {
			return nil
		}
		q.idxCursor, _ = res[0].(string)
		removed, _ := res[1].(int64)
		read, _ := res[2].(int64)
		if q.idxCursor == "0" || removed*2 < read || read == 0 {
			return nil
		}
	}
	return nil
}

// taskFromIndex looks taskID up in the index of each queue (one round
// trip) and verifies the place it points at (one more). A field whose
// message is not there is deleted, and the task is reported not found
// (false): the caller falls back to searching.
func (b *broker) taskFromIndex(ctx context.Context, queues []string, taskID string) (sdk.MessageInfo, bool, error) {
	if b.opts.mode != modeStream || taskID == "" {
		return sdk.MessageInfo{}, false, nil
	}
	pipe := b.client.Pipeline()
	gets := make([]*redis.StringCmd, len(queues))
	for i, q := range queues {
		gets[i] = pipe.HGet(ctx, b.idsKey(q), taskID)
	}
	cmds, err := pipe.Exec(ctx)
	if err := pipelineErr(cmds, err, func(e error) bool { return e == redis.Nil }); err != nil {
		return sdk.MessageInfo{}, false, err
	}
	for i, q := range queues {
		v, err := gets[i].Result()
		if err != nil || v == "" {
			continue
		}
		info, ok, err := b.indexed(ctx, q, v)
		if err != nil {
			return sdk.MessageInfo{}, false, err
		}
		if ok && info.TaskID == taskID {
			return info, true, nil
		}
		if err := unindexScript.Run(ctx, b.client, []string{b.idsKey(q)}, taskID, v).Err(); err != nil {
			b.log.Debug("dropping a stale task index field failed", "queue", q, "task_id", taskID, "error", err)
		}
	}
	return sdk.MessageInfo{}, false, nil
}

// indexed reads the message an index value of queue points at; false when
// it is not there (or no longer in the state the value names).
func (b *broker) indexed(ctx context.Context, queue, v string) (sdk.MessageInfo, bool, error) {
	kind, rest, _ := strings.Cut(v, "|")
	var info sdk.MessageInfo
	switch kind {
	case "s":
		key := b.streamKey(queue)
		pipe := b.client.Pipeline()
		entry := pipe.XRangeN(ctx, key, rest, rest, 1)
		pending := pipe.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: b.groupName(queue), Start: rest, End: rest, Count: 1})
		groups := pipe.XInfoGroups(ctx, key)
		cmds, err := pipe.Exec(ctx)
		if err := pipelineErr(cmds, err, func(e error) bool { return e == redis.Nil || isNoGroup(e) || isNoSuchKey(e) }); err != nil {
			return info, false, err
		}
		ms := entry.Val()
		if len(ms) == 0 {
			return info, false, nil
		}
		if ps := pending.Val(); len(ps) == 1 {
			info = entryInfo(ms[0], queue, sdk.StateRunning)
			info.LeaseHolder = ps[0].Consumer
			info.Attempt += int(ps[0].RetryCount)
			info.LeaseDeadline = b.now().Add(b.opts.lease - ps[0].Idle)
			break
		}
		last := "0-0"
		for _, g := range groups.Val() {
			if g.Name == b.groupName(queue) {
				last = g.LastDeliveredID
			}
		}
		if compareEntryIDs(rest, last) <= 0 {
			return info, false, nil // delivered and acked; the entry was kept (delete_acked = false)
		}
		info = entryInfo(ms[0], queue, sdk.StateQueued)
	case "z":
		score, tag, ok := strings.Cut(rest, "|")
		if !ok {
			return info, false, nil
		}
		zs, err := b.client.ZRangeByScoreWithScores(ctx, b.delayedKey(queue), &redis.ZRangeBy{Min: score, Max: score}).Result()
		if err != nil && err != redis.Nil {
			return info, false, err
		}
		for _, z := range zs {
			member, _ := z.Member.(string)
			if strings.HasPrefix(member, tag+"|") {
				info = delayedInfo(queue, member, z.Score)
				describe(&info)
				return info, true, nil
			}
		}
		return info, false, nil
	case "d":
		ms, err := b.client.XRangeN(ctx, b.deadKey(queue), rest, rest, 1).Result()
		if err != nil && err != redis.Nil {
			return info, false, err
		}
		if len(ms) == 0 {
			return info, false, nil
		}
		info = entryInfo(ms[0], queue, sdk.StateDead)
	default:
		return info, false, nil
	}
	describe(&info)
	return info, true, nil
}

// compareEntryIDs orders two stream entry ids ("ms-seq").
func compareEntryIDs(a, c string) int {
	am, as := splitEntryID(a)
	cm, cs := splitEntryID(c)
	switch {
	case am != cm:
		if am < cm {
			return -1
		}
		return 1
	case as < cs:
		return -1
	case as > cs:
		return 1
	}
	return 0
}

func splitEntryID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}

// delayedInfo describes a member of a delayed set.
func delayedInfo(queue, member string, score float64) sdk.MessageInfo {
	ref, rest, _ := strings.Cut(member, "|")
	attempt, body, _ := strings.Cut(rest, "|")
	info := sdk.MessageInfo{Ref: ref, Queue: queue, State: sdk.StateDelayed, Body: []byte(body), DueAt: time.UnixMilli(int64(score))}
	info.Attempt, _ = strconv.Atoi(attempt)
	return info
}
