package taskiqredis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// scheduleCapabilities are what the Redis schedule source implements.
var scheduleCapabilities = []string{sdk.CapScheduleWrite, sdk.CapScheduleState}

// scheduleSource keeps schedules in taskiq-redis's ListRedisScheduleSource
// layout, so a Go scheduler can take over from a Python one on the same
// Redis (and Python's `add_schedule` calls keep working):
//
//	<prefix>:data:<id>                  the schedule (serialized dict)
//	<prefix>:cron                       list of the ids of cron schedules
//	<prefix>:interval                   list of the ids of interval schedules
//	<prefix>:time:<YYYY-MM-DDTHH:MM>    ids of one-shot schedules due that minute (UTC)
//
// taskiq-go adds the scheduler's state beside them, under keys Python
// never reads: <prefix>:last:<id> (the last fired slot, unix ms) and
// <prefix>:lease:<name> (the leader lease).
type scheduleSource struct {
	client redis.UniversalClient
	addr   string
	prefix string
	codec  scheduleCodec
	log    hclog.Logger
}

func newScheduleSource(_ context.Context, cfg sdk.Config) (*scheduleSource, error) {
	conn, o, err := decodeScheduleConfig(cfg)
	if err != nil {
		return nil, err
	}
	client, addr, log, err := connect(conn, cfg)
	if err != nil {
		return nil, err
	}
	return &scheduleSource{client: client, addr: addr, prefix: o.prefix, codec: o.codec, log: log}, nil
}

func (s *scheduleSource) conn() (redis.UniversalClient, string) { return s.client, s.addr }

func (s *scheduleSource) dataKey(id string) string    { return s.prefix + ":data:" + id }
func (s *scheduleSource) cronKey() string             { return s.prefix + ":cron" }
func (s *scheduleSource) intervalKey() string         { return s.prefix + ":interval" }
func (s *scheduleSource) lastKey(id string) string    { return s.prefix + ":last:" + id }
func (s *scheduleSource) leaseKey(name string) string { return s.prefix + ":lease:" + name }
func (s *scheduleSource) timeKey(t time.Time) string {
	return s.prefix + ":time:" + t.UTC().Format("2006-01-02T15:04")
}
func (s *scheduleSource) timeKeyPattern() string { return s.prefix + ":time:*" }

// listKey is the list a schedule's id is in ("" when it has no kind).
func (s *scheduleSource) listKey(sc sdk.Schedule) string {
	switch {
	case sc.Cron != "":
		return s.cronKey()
	case !sc.Time.IsZero():
		return s.timeKey(sc.Time)
	case sc.Interval > 0:
		return s.intervalKey()
	}
	return ""
}

// Schedules reads every schedule: the ids of the cron and interval lists
// and of every time list, then their data keys. A value that cannot be
// decoded is logged and left out, so one bad entry does not stop the rest.
func (s *scheduleSource) Schedules(ctx context.Context) ([]sdk.Schedule, error) {
	pipe := s.client.Pipeline()
	cron := pipe.LRange(ctx, s.cronKey(), 0, -1)
	interval := pipe.LRange(ctx, s.intervalKey(), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, wrapErr("list schedules", s.addr, err)
	}
	ids := append(cron.Val(), interval.Val()...)
	timeKeys, err := s.scan(ctx, s.timeKeyPattern())
	if err != nil {
		return nil, err
	}
	if len(timeKeys) > 0 {
		pipe := s.client.Pipeline()
		cmds := make([]*redis.StringSliceCmd, len(timeKeys))
		for i, k := range timeKeys {
			cmds[i] = pipe.LRange(ctx, k, 0, -1)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, wrapErr("list schedules", s.addr, err)
		}
		for _, c := range cmds {
			ids = append(ids, c.Val()...)
		}
	}
	seen := make(map[string]bool, len(ids))
	unique := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			unique = append(unique, id)
		}
	}
	var out []sdk.Schedule
	for start := 0; start < len(unique); start += 100 {
		chunk := unique[start:min(start+100, len(unique))]
		keys := make([]string, len(chunk))
		for i, id := range chunk {
			keys[i] = s.dataKey(id)
		}
		vals, err := s.mget(ctx, keys)
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			if v == nil {
				continue // listed, but its data is gone: taskiq-redis skips it too
			}
			sc, err := s.codec.decode(v)
			if err != nil {
				s.log.Warn("skipping a schedule that cannot be decoded", "key", keys[i], "error", err)
				continue
			}
			if sc.ID == "" {
				sc.ID = chunk[i]
			}
			out = append(out, sc)
		}
	}
	return out, nil
}

// mget reads keys one by one in a pipeline: MGET across hash slots fails
// in a cluster.
func (s *scheduleSource) mget(ctx context.Context, keys []string) ([][]byte, error) {
	pipe := s.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrapErr("read schedules", s.addr, err)
	}
	out := make([][]byte, len(keys))
	for i, c := range cmds {
		if b, err := c.Bytes(); err == nil {
			out[i] = b
		}
	}
	return out, nil
}

func (s *scheduleSource) scan(ctx context.Context, pattern string) ([]string, error) {
	var keys []string
	scanOne := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, pattern, 500).Iterator()
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		return it.Err()
	}
	var err error
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			mu.Lock() // ForEachMaster calls in parallel
			defer mu.Unlock()
			return scanOne(ctx, c)
		})
	} else {
		err = scanOne(ctx, s.client)
	}
	if err != nil {
		return nil, wrapErr("scan schedules", s.addr, err)
	}
	return keys, nil
}

// Add writes the data key and puts the id in its list; a schedule replaced
// leaves its old list first, so an id is never listed twice.
func (s *scheduleSource) Add(ctx context.Context, sc sdk.Schedule) error {
	if sc.ID == "" {
		return fmt.Errorf("add schedule: the schedule id is empty")
	}
	list := s.listKey(sc)
	if list == "" {
		return fmt.Errorf("add schedule %q: set one of cron, interval and time", sc.ID)
	}
	body, err := s.codec.encode(sc)
	if err != nil {
		return fmt.Errorf("add schedule %q: %w", sc.ID, err)
	}
	old, err := s.read(ctx, sc.ID)
	if err != nil && !errors.Is(err, sdk.ErrScheduleNotFound) {
		return err
	}
	pipe := s.client.TxPipeline()
	pipe.Set(ctx, s.dataKey(sc.ID), body, 0)
	if oldList := s.listKey(old); oldList != "" {
		pipe.LRem(ctx, oldList, 0, sc.ID)
	}
	pipe.LRem(ctx, list, 0, sc.ID)
	pipe.RPush(ctx, list, sc.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapErr("add schedule", s.addr, err)
	}
	return nil
}

// read returns the stored schedule, or sdk.ErrScheduleNotFound.
func (s *scheduleSource) read(ctx context.Context, id string) (sdk.Schedule, error) {
	b, err := s.client.Get(ctx, s.dataKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return sdk.Schedule{}, fmt.Errorf("%w: %q", sdk.ErrScheduleNotFound, id)
	}
	if err != nil {
		return sdk.Schedule{}, wrapErr("read schedule", s.addr, err)
	}
	sc, err := s.codec.decode(b)
	if err != nil {
		// Undecodable: still deletable, from every list it may be in.
		return sdk.Schedule{ID: id}, nil
	}
	return sc, nil
}

// Delete removes the data key, the id from its list and the stored state.
func (s *scheduleSource) Delete(ctx context.Context, id string) error {
	sc, err := s.read(ctx, id)
	if err != nil {
		return err
	}
	pipe := s.client.TxPipeline()
	pipe.Del(ctx, s.dataKey(id), s.lastKey(id))
	if list := s.listKey(sc); list != "" {
		pipe.LRem(ctx, list, 0, id)
	} else {
		pipe.LRem(ctx, s.cronKey(), 0, id)
		pipe.LRem(ctx, s.intervalKey(), 0, id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapErr("delete schedule", s.addr, err)
	}
	return nil
}

// PreSend does nothing.
func (s *scheduleSource) PreSend(context.Context, sdk.Schedule) error { return nil }

// PostSend deletes a one-shot schedule once it was sent, as taskiq-redis
// does.
func (s *scheduleSource) PostSend(ctx context.Context, sc sdk.Schedule) error {
	if sc.Time.IsZero() {
		return nil
	}
	if err := s.Delete(ctx, sc.ID); err != nil && !errors.Is(err, sdk.ErrScheduleNotFound) {
		return err
	}
	return nil
}

// markFiredScript keeps the later slot. KEYS[1] last key; ARGV[1] slot ms.
var markFiredScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
`)

// leaseScript takes a free lease (SET NX PX) or renews the holder's own.
// KEYS[1] lease key; ARGV[1] holder; ARGV[2] ttl ms. Returns 1 when held.
var leaseScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// releaseScript deletes the lease when holder has it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`)

func (s *scheduleSource) LastFired(ctx context.Context, ids []string) (map[string]time.Time, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.lastKey(id)
	}
	vals, err := s.mget(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(ids))
	for i, v := range vals {
		if v == nil {
			continue
		}
		ms, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		if err != nil {
			s.log.Warn("ignoring a last fired slot that is not a number", "key", keys[i])
			continue
		}
		out[ids[i]] = time.UnixMilli(ms).UTC()
	}
	return out, nil
}

func (s *scheduleSource) MarkFired(ctx context.Context, id string, slot time.Time) error {
	if err := markFiredScript.Run(ctx, s.client, []string{s.lastKey(id)}, slot.UnixMilli()).Err(); err != nil {
		return wrapErr("mark fired", s.addr, err)
	}
	return nil
}

func (s *scheduleSource) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	n, err := leaseScript.Run(ctx, s.client, []string{s.leaseKey(name)}, holder, max(ttl.Milliseconds(), 1)).Int()
	if err != nil {
		return false, wrapErr("acquire lease", s.addr, err)
	}
	return n == 1, nil
}

func (s *scheduleSource) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := releaseScript.Run(ctx, s.client, []string{s.leaseKey(name)}, holder).Err(); err != nil {
		return wrapErr("release lease", s.addr, err)
	}
	return nil
}

func (s *scheduleSource) Close(context.Context) error { return s.client.Close() }

// Interface guards
var (
	_ sdk.ScheduleSource = (*scheduleSource)(nil)
	_ sdk.ScheduleHooks  = (*scheduleSource)(nil)
	_ sdk.ScheduleState  = (*scheduleSource)(nil)
)
