package taskiqredis

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Values of unknown_tasks: what a worker does with a message whose task name
// it does not register.
const (
	unknownDeadLetter = "dead_letter"
	unknownLeave      = "leave"
)

func unknownTasksAttribute() sdk.Attribute {
	return sdk.Attribute{Name: "unknown_tasks", Type: sdk.TypeString, Default: unknownDeadLetter,
		Description: `What a worker does with a message for a task name it does not register: ` +
			`"dead_letter" (default; right when every consumer of the group is a taskiq-go worker ` +
			`with the same tasks) or "leave": the message goes back to the end of the stream after 1s ` +
			`(list) for another consumer of the group, such as a Python taskiq service, and no ` +
			`result is stored. Each time counts as an attempt, so a task no consumer runs is ` +
			`dead-lettered after max_attempts.`}
}

// Capabilities reports what this broker's mode and options implement.
func (b *broker) Capabilities() []string {
	caps := capabilitiesFor(b.opts.mode)
	if b.opts.leaveUnknown && b.opts.mode != modePubSub {
		caps = append(caps, sdk.CapLeaveUnknownTasks)
	}
	return caps
}

// knownConsumersFor is the sorted set of the consumer names taskiq-go
// listeners used on a stream (score: when last registered, Unix ms). A
// consumer of the group missing from it is some other program's, such as
// a Python taskiq worker's.
func knownConsumersFor(streamKey string) string { return streamKey + ":consumers" }

// knownConsumerTTL: names registered longer ago are forgotten, so the set
// does not grow with every process ever started.
const knownConsumerTTL = 30 * 24 * time.Hour

// registerConsumers records this listener's consumer name on each of its
// streams and warns about the consumers of its group that no taskiq-go
// listener registered: they may run tasks this worker does not (see
// unknown_tasks). Failures are logged, never fatal: this is advice.
func (s *streamListener) registerConsumers(ctx context.Context) {
	now := s.b.now()
	pipe := s.b.client.Pipeline()
	infos := make([]*redis.XInfoConsumersCmd, len(s.queues))
	known := make([]*redis.StringSliceCmd, len(s.queues))
	for i, q := range s.queues {
		set := knownConsumersFor(q.key)
		pipe.ZAdd(ctx, set, redis.Z{Score: float64(now.UnixMilli()), Member: s.consumer})
		pipe.ZRemRangeByScore(ctx, set, "-inf", "("+strconv.FormatInt(now.Add(-knownConsumerTTL).UnixMilli(), 10))
		known[i] = pipe.ZRange(ctx, set, 0, -1)
		infos[i] = pipe.XInfoConsumers(ctx, q.key, q.group)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.b.log.Debug("could not check the consumers of the group", "error", err)
	}
	for i, q := range s.queues {
		consumers, err := infos[i].Result()
		if err != nil {
			continue
		}
		names := known[i].Val()
		var foreign []string
		for _, c := range consumers {
			if !slices.Contains(names, c.Name) {
				foreign = append(foreign, c.Name)
			}
		}
		if len(foreign) == 0 {
			continue
		}
		if s.b.opts.leaveUnknown {
			s.b.log.Info("the consumer group has consumers that are not taskiq-go workers; messages for tasks this worker does not register are left to them (unknown_tasks = \"leave\")",
				"queue", q.name, "group", q.group, "consumers", foreign)
			continue
		}
		s.b.log.Warn("the consumer group has consumers that are not taskiq-go workers (a Python taskiq service?); this worker dead-letters every message for a task it does not register, which they may have: set unknown_tasks = \"leave\" in the broker's config to leave such messages to them, or give this worker a stream of its own",
			"queue", q.name, "group", q.group, "consumers", foreign)
	}
}
