package taskiqredis

import "github.com/redis/go-redis/v9"

// extendScript renews the lease of entries this consumer still owns.
//
// XCLAIM with min-idle 0 resets an entry's idle time, which is what a lease
// extension is in Redis. On its own it would also steal an entry that another
// worker has already reclaimed after our lease ran out, and the two workers
// would then take it from each other on every extension. So the script
// claims only entries whose pending owner is still this consumer, and keeps
// the delivery counter as it is (RETRYCOUNT): an extension is not a delivery.
// With ARGV[3] = an idle time in ms it puts back an entry that a reclaim of
// this consumer took although this consumer still runs it (see
// (*streamListener).keepOwn): the idle time is set to ARGV[3] (the lease:
// still expired, so another worker can take it over) and the delivery
// counter is lowered by the one delivery the claim counted.
//
// KEYS[1] stream; ARGV[1] group; ARGV[2] consumer; ARGV[3] "" (extend) or
// idle ms (put back); ARGV[4..] entry ids.
// Returns the ids that were still owned by this consumer.
var extendScript = redis.NewScript(`
local owned = {}
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if p[1] then
    if ARGV[3] == '' then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'RETRYCOUNT', p[1][4], 'JUSTID')
    else
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3],
        'RETRYCOUNT', math.max(p[1][4] - 1, 0), 'JUSTID')
    end
    owned[#owned + 1] = ARGV[i]
  end
end
return owned
`)

// ownedScript lists the entries whose pending owner is still this consumer.
// A nack or dead letter is applied only to those: after a lease expired and
// another worker reclaimed the entry, a late nack from the first worker
// (retried through a Redis outage, say) would otherwise put a second live
// copy of the message in the queue.
//
// KEYS[1] stream; ARGV[1] group; ARGV[2] consumer; ARGV[3] unused (the
// argument layout of extendScript); ARGV[4..] entry ids.
var ownedScript = redis.NewScript(`
local owned = {}
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if p[1] then
    owned[#owned + 1] = ARGV[i]
  end
end
return owned
`)

// reclaimScript takes over entries whose lease expired and reports how often
// each was delivered.
//
// XAUTOCLAIM checks the idle time and changes the owner in one atomic server
// step, so when two workers reclaim at the same moment the first one resets
// the idle time and the second one no longer sees the entry as idle: every
// expired entry is claimed by exactly one worker. (Python taskiq-redis guards
// its reclaim with a separate lock whose expiry can let two workers run the
// same message; nothing like that exists here.) The delivery counter is read
// in the same script, so the attempt number cannot be raced either.
//
// KEYS[1] stream; ARGV[1] group; ARGV[2] consumer; ARGV[3] min idle ms;
// ARGV[4] cursor; ARGV[5] count.
// Returns {next cursor, {id, {field, value, ...}, delivery count}, ...}.
var reclaimScript = redis.NewScript(`
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {r[1]}
for _, e in ipairs(r[2]) do
  if e and e[2] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local n = 1
    if p[1] then n = p[1][4] end
    out[#out + 1] = {e[1], e[2], n}
  end
end
return out
`)

// luaXAdd defines xadd(key, maxlen, body, attempt) for the scripts that
// add a message: "XADD key [MAXLEN ~ maxlen] * data body [attempt n]",
// the attempt field only when it is not "0". The attempt field is ours: it
// carries the delivery count of a nacked message into its new entry;
// taskiq-redis reads only "data" and ignores it.
const luaXAdd = `
local function xadd(key, maxlen, body, attempt)
  local args = {'XADD', key}
  if maxlen ~= '0' then
    args[#args + 1] = 'MAXLEN'
    args[#args + 1] = '~'
    args[#args + 1] = maxlen
  end
  args[#args + 1] = '*'
  args[#args + 1] = 'data'
  args[#args + 1] = body
  if attempt ~= '0' then
    args[#args + 1] = 'attempt'
    args[#args + 1] = attempt
  end
  return redis.call(unpack(args))
end
`

// moveDueScript moves delayed messages whose time has come to their queue.
// Selecting, removing and pushing happen in one script, so when several
// listeners run it concurrently each member is moved exactly once.
//
// Each member is pushed before it is removed. A script is not rolled back
// when a command fails, so this order means a failed push (Redis over
// maxmemory refuses XADD and LPUSH, but never ZREM) leaves the member in the
// set instead of losing it. It is also what makes the OOM check bite:
// without a shebang, Redis refuses a deny-oom command in a script only while
// the script has written nothing yet, so the first write must be the one
// that grows memory.
//
// A member is "<16 hex id>|<attempt>|<body>": the id keeps identical bodies
// apart in the sorted set, the attempt carries a nacked message's delivery
// count into its next life.
//
// In stream mode a moved message's task-id index field (taskindex.go) is
// pointed at its new entry, when it still pointed at the member.
//
// KEYS[1] delayed set; KEYS[2] stream or list; KEYS[3] task-id index.
// ARGV[1] now (unix ms); ARGV[2] limit; ARGV[3] "stream" or "list";
// ARGV[4] maxlen (0 = none).
// Returns {moved, score of the next member or ""}.
var moveDueScript = redis.NewScript(luaXAdd + luaTaskID + `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local sep = string.find(m, '|', 18, true)
  if sep then
    local attempt = string.sub(m, 18, sep - 1)
    local body = string.sub(m, sep + 1)
    if ARGV[3] == 'list' then
      redis.call('LPUSH', KEYS[2], body)
    else
      local id = xadd(KEYS[2], ARGV[4], body, attempt)
      local t = tid(body)
      if t then
        local cur = redis.call('HGET', KEYS[3], t)
        if not cur or string.sub(cur, -17) == '|' .. string.sub(m, 1, 16) then
          redis.call('HSET', KEYS[3], t, 's|' .. id)
        end
      end
    end
  end
  redis.call('ZREM', KEYS[1], m)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local score = ''
if nxt[2] then score = nxt[2] end
return {#due, score}
`)

// settleScript applies the nacks and dead letters of one queue: for each
// entry, the write that keeps the message (re-add, delayed member or dead
// letter), then XACK and, with delete_acked, XDEL. A plain pipeline would
// not do: Redis over maxmemory (noeviction) refuses the write but runs the
// XACK and XDEL after it, which deletes the message.
//
// Why it is safe without MULTI: Redis does not roll a script back, but it
// stops at the first command that fails (redis.call raises). Entries are
// handled one at a time, write first, so a failure leaves every later entry
// pending and untouched. Over maxmemory, Redis refuses a deny-oom command
// (XADD, ZADD) in a script without a shebang only while the script has
// not written yet; the first command that writes is such a write, so a
// full Redis refuses the script before it changed anything, and the
// entries stay pending, to be redelivered when their lease expires. (A
// "#!lua" shebang would have Redis refuse the whole script up front, but
// miniredis does not parse it.)
//
// Each entry is handled only while it is still pending for this consumer
// (XPENDING … consumer), checked inside the script, so a settlement that
// arrives after another worker reclaimed the entry cannot put a second
// live copy in the queue, and a script retried after a lost reply does
// nothing twice. The body and the attempt come from the entry itself.
//
// The task-id index field of each message (taskindex.go) is pointed at
// its new place; one whose entry was trimmed is left to the sweep.
//
// KEYS[1] stream; KEYS[2] delayed set; KEYS[3] dead-letter stream; KEYS[4]
// task-id index (all in one slot in a cluster; see
// (*streamListener).applyRequeues).
// ARGV[1] group; ARGV[2] consumer; ARGV[3] "1" to XDEL; ARGV[4] maxlen
// ("0" = none); ARGV[5] now (unix ms); ARGV[6] queue name; then four per
// entry: kind ("x" re-add, "z" delayed, "d" dead letter, "a" ack only:
// the message was written elsewhere already), entry id, argument (due time
// of "z", reason of "d"), member tag of "z" (16 hex).
// Returns one code per entry: 1 applied, 0 not pending for this consumer
// (nothing done), 2 acked but the entry was no longer in the stream
// (trimmed), 3 dead-lettered because it had no "data" field.
var settleScript = redis.NewScript(luaXAdd + luaTaskID + `
local out = {}
for i = 7, #ARGV, 4 do
  local kind, id, arg, tag = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if not p[1] then
    out[#out + 1] = 0
  else
    local code = 1
    if kind ~= 'a' then
      local e = redis.call('XRANGE', KEYS[1], id, id)
      if not e[1] then
        code = 2
      else
        local body, prior = nil, 0
        local f = e[1][2]
        for j = 1, #f, 2 do
          if f[j] == 'data' then
            body = f[j + 1]
          elseif f[j] == 'attempt' then
            prior = tonumber(f[j + 1]) or 0
          end
        end
        local attempt = prior + p[1][4]
        if body == nil and kind ~= 'd' then
          kind, arg, code = 'd', 'stream entry has no "data" field', 3
        end
        local t = tid(body)
        if kind == 'd' then
          local did = redis.call('XADD', KEYS[3], '*', 'data', body or '', 'reason', arg, 'queue', ARGV[6],
            'attempt', attempt, 'failed_at', ARGV[5], 'original_id', id)
          setIdx(KEYS[4], t, 'd|' .. did, 's|' .. id)
        elseif kind == 'z' then
          redis.call('ZADD', KEYS[2], arg, tag .. '|' .. attempt .. '|' .. body)
          setIdx(KEYS[4], t, 'z|' .. arg .. '|' .. tag, 's|' .. id)
        else
          local nid = xadd(KEYS[1], ARGV[4], body, tostring(attempt))
          setIdx(KEYS[4], t, 's|' .. nid, 's|' .. id)
        end
      end
    end
    redis.call('XACK', KEYS[1], ARGV[1], id)
    if ARGV[3] == '1' then
      redis.call('XDEL', KEYS[1], id)
    end
    out[#out + 1] = code
  end
end
return out
`)
