package sdk

import (
	"time"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// The conversions of the inspection role, used by both sides.

func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromUnixMs(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func queueStatsToProto(q QueueStats) *pluginv1.QueueStats {
	return &pluginv1.QueueStats{Name: q.Name, Queued: q.Queued, Delayed: q.Delayed, Running: q.Running,
		Dead: q.Dead, OldestAgeMs: q.OldestAge.Milliseconds(), Consumers: int32(q.Consumers),
		Paused: q.Paused, RefreshedAtUnixMs: unixMs(q.RefreshedAt), Delivered: q.Delivered}
}

func queueStatsFromProto(p *pluginv1.QueueStats) QueueStats {
	return QueueStats{Name: p.Name, Queued: p.Queued, Delayed: p.Delayed, Running: p.Running,
		Dead: p.Dead, OldestAge: time.Duration(p.OldestAgeMs) * time.Millisecond,
		Consumers: int(p.Consumers), Paused: p.Paused, RefreshedAt: fromUnixMs(p.RefreshedAtUnixMs), Delivered: p.Delivered}
}

func filterToProto(f MessageFilter) *pluginv1.MessageFilter {
	return &pluginv1.MessageFilter{TaskName: f.TaskName, TaskId: f.TaskID, Labels: f.Labels, Text: f.Text}
}

func filterFromProto(p *pluginv1.MessageFilter) MessageFilter {
	if p == nil {
		return MessageFilter{}
	}
	return MessageFilter{TaskName: p.TaskName, TaskID: p.TaskId, Labels: p.Labels, Text: p.Text}
}

func messageInfoToProto(m MessageInfo) *pluginv1.MessageInfo {
	return &pluginv1.MessageInfo{Ref: m.Ref, TaskId: m.TaskID, TaskName: m.TaskName, Queue: m.Queue,
		State: string(m.State), Body: m.Body, Attempt: int32(m.Attempt),
		EnqueuedAtUnixMs: unixMs(m.EnqueuedAt), DueAtUnixMs: unixMs(m.DueAt),
		LeaseHolder: m.LeaseHolder, LeaseDeadlineUnixMs: unixMs(m.LeaseDeadline),
		Reason: m.Reason, FailedAtUnixMs: unixMs(m.FailedAt)}
}

func messageInfoFromProto(p *pluginv1.MessageInfo) MessageInfo {
	return MessageInfo{Ref: p.Ref, TaskID: p.TaskId, TaskName: p.TaskName, Queue: p.Queue,
		State: MessageState(p.State), Body: p.Body, Attempt: int(p.Attempt),
		EnqueuedAt: fromUnixMs(p.EnqueuedAtUnixMs), DueAt: fromUnixMs(p.DueAtUnixMs),
		LeaseHolder: p.LeaseHolder, LeaseDeadline: fromUnixMs(p.LeaseDeadlineUnixMs),
		Reason: p.Reason, FailedAt: fromUnixMs(p.FailedAtUnixMs)}
}

func actionToProto(a Action) *pluginv1.ActionRequest {
	return &pluginv1.ActionRequest{Kind: string(a.Kind), Queue: a.Queue, State: string(a.State),
		Refs: a.Refs, Filter: filterToProto(a.Filter), Target: a.Target, DryRun: a.DryRun}
}

func actionFromProto(p *pluginv1.ActionRequest) Action {
	return Action{Kind: ActionKind(p.Kind), Queue: p.Queue, State: MessageState(p.State),
		Refs: p.Refs, Filter: filterFromProto(p.Filter), Target: p.Target, DryRun: p.DryRun}
}

func workerToProto(w WorkerInfo) *pluginv1.WorkerInfo {
	return &pluginv1.WorkerInfo{Id: w.ID, Host: w.Host, Pid: int32(w.PID), Queues: w.Queues,
		Running: int32(w.Running), StartedUnixMs: unixMs(w.Started), LastSeenUnixMs: unixMs(w.LastSeen)}
}

func workerFromProto(p *pluginv1.WorkerInfo) WorkerInfo {
	if p == nil {
		return WorkerInfo{}
	}
	return WorkerInfo{ID: p.Id, Host: p.Host, PID: int(p.Pid), Queues: p.Queues,
		Running: int(p.Running), Started: fromUnixMs(p.StartedUnixMs), LastSeen: fromUnixMs(p.LastSeenUnixMs)}
}
