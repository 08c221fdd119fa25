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
//
// KEYS[1] stream; ARGV[1] group; ARGV[2] consumer; ARGV[3..] entry ids.
// Returns the ids whose lease was extended.
var extendScript = redis.NewScript(`
local owned = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if p[1] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'RETRYCOUNT', p[1][4], 'JUSTID')
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
// KEYS[1] stream; ARGV[1] group; ARGV[2] consumer; ARGV[3..] entry ids.
var ownedScript = redis.NewScript(`
local owned = {}
for i = 3, #ARGV do
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

// moveDueScript moves delayed messages whose time has come to their queue.
// Selecting, removing and pushing happen in one script, so when several
// listeners run it concurrently each member is moved exactly once.
//
// A member is "<16 hex id>|<attempt>|<body>": the id keeps identical bodies
// apart in the sorted set, the attempt carries a nacked message's delivery
// count into its next life.
//
// KEYS[1] delayed set; KEYS[2] stream or list. ARGV[1] now (unix ms);
// ARGV[2] limit; ARGV[3] "stream" or "list"; ARGV[4] maxlen (0 = none).
// Returns {moved, score of the next member or ""}.
var moveDueScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local sep = string.find(m, '|', 18, true)
  if sep then
    local attempt = string.sub(m, 18, sep - 1)
    local body = string.sub(m, sep + 1)
    if ARGV[3] == 'list' then
      redis.call('LPUSH', KEYS[2], body)
    else
      local args = {'XADD', KEYS[2]}
      if ARGV[4] ~= '0' then
        args[#args + 1] = 'MAXLEN'
        args[#args + 1] = '~'
        args[#args + 1] = ARGV[4]
      end
      args[#args + 1] = '*'
      args[#args + 1] = 'data'
      args[#args + 1] = body
      if attempt ~= '0' then
        args[#args + 1] = 'attempt'
        args[#args + 1] = attempt
      end
      redis.call(unpack(args))
    end
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local score = ''
if nxt[2] then score = nxt[2] end
return {#due, score}
`)
