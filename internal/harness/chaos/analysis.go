package chaos

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/taskiq-go/taskiq/internal/harness/chaos/execlog"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// TaskKind is which chaos task a kicked id runs.
type TaskKind string

// The chaos tasks (chaos/tasks-module).
const (
	KindEcho   TaskKind = "echo"
	KindPanic  TaskKind = "panic"
	KindHang   TaskKind = "hang"
	KindMemhog TaskKind = "memhog"
)

// good reports whether the kind is expected to succeed.
func (k TaskKind) good() bool { return k == KindEcho }

// Task is one kicked task: its id is also the key of its unique payload.
type Task struct {
	ID      string
	Kind    TaskKind
	Payload string
	// KickRetried is set when a kick of this id returned an error and was
	// sent again: the first attempt may have reached the queue, so a
	// second execution is explained by the producer, not the worker.
	KickRetried bool
}

// EventKind names a fault the harness injected.
type EventKind string

// Injected faults.
const (
	KillWorker  EventKind = "kill-worker"
	KillBroker  EventKind = "kill-broker-plugin"
	KillResults EventKind = "kill-result-plugin"
	RedisDown   EventKind = "redis-restart"
	RedisOOM    EventKind = "redis-oom"
)

// faultKinds are every EventKind, in the order reports list them.
var faultKinds = []EventKind{KillWorker, KillBroker, KillResults, RedisDown, RedisOOM}

// Event is one injected fault. WorkerPID is the worker child it hit (0: all
// of them, as a Redis restart does). Until is the end of a fault that lasts
// (Redis down); zero for an instant one.
type Event struct {
	Kind      EventKind
	WorkerPID int
	At, Until time.Time
	Detail    string
}

// redisRecovery is how long clients may keep failing after Redis is back:
// go-redis, after failed dials, answers with the last dial error until its
// background redial (once a second) succeeds.
const redisRecovery = time.Second

func (e Event) end() time.Time {
	switch {
	case e.Until.IsZero():
		return e.At
	case e.Kind == RedisDown:
		return e.Until.Add(redisRecovery)
	}
	return e.Until
}

// execution is one run of a task in a module process: a start line and,
// unless the process died first, its end line.
type execution struct {
	workerPID, modulePID int
	start, end           time.Time // end is zero without an end line
}

// Stats are the counts of one run.
type Stats struct {
	Kicked int
	// OK and Err count stored results, DeadLettered the tasks in the
	// dead-letter stream without a result.
	OK, Err, DeadLettered int
	// Lost: kicked, no result, not dead-lettered.
	Lost int
	// LostNeverRan: lost tasks that never started (versus started and
	// whose result never arrived).
	LostNeverRan int
	// Wrong counts tasks whose outcome is not the expected one: a good task
	// with an error result, a wrong return value or in dead letter; a bad
	// task with a success result.
	Wrong int
	// Executions counts start lines; Unrecorded the tasks with a result
	// but no start line (the execution log lost a write).
	Executions, Unrecorded int
	// Duplicates = executions - 1 per task, summed, split by cause:
	// DupKilledRunning ran on a worker SIGKILLed while running the task;
	// DupDisrupted overlapped another injected fault on its worker (a
	// plugin kill, the Redis restart); DupKickRetry belong to a task whose
	// kick was retried; DupUnexplained have no cause: a broken guarantee.
	Duplicates, DupKilledRunning, DupDisrupted, DupKickRetry, DupUnexplained int
	// DupFinishedBeforeBrokerKill counts, among the duplicates, executions
	// that had ended before a SIGKILL of their worker's broker plugin (within
	// grace): the broker declares stable delivery ids, so the host must carry
	// their acks to the restarted plugin, and each one is a violation.
	DupFinishedBeforeBrokerKill int
	// DupByFault splits DupKilledRunning + DupDisrupted by the kind of the
	// fault that explains them.
	DupByFault map[EventKind]int
	// ByKind breaks the outcome down per task kind.
	ByKind map[TaskKind]*KindStats
	// Samples are a few task ids per problem, for the report.
	Samples map[string][]string
}

// KindStats are the outcomes of one task kind; ErrTypes counts error
// results by exception type.
type KindStats struct {
	Kicked, OK, Err, DeadLettered, Lost, Executions int
	ErrTypes                                        map[string]int
}

const maxSamples = 5

func (s *Stats) sample(problem, id string) {
	if s.Samples == nil {
		s.Samples = map[string][]string{}
	}
	if len(s.Samples[problem]) < maxSamples {
		s.Samples[problem] = append(s.Samples[problem], id)
	}
}

// Analyze counts the outcome of a run. grace is how long after a task's end
// a fault can still cost it its acknowledgement (a settlement batched but
// not yet written).
func Analyze(tasks []Task, results map[string]*wire.Result, dead map[string]string, lines []execlog.Line, events []Event, grace time.Duration) Stats {
	st := Stats{Kicked: len(tasks), ByKind: map[TaskKind]*KindStats{}}
	execs := pairExecutions(lines)
	for _, t := range tasks {
		ks := st.ByKind[t.Kind]
		if ks == nil {
			ks = &KindStats{ErrTypes: map[string]int{}}
			st.ByKind[t.Kind] = ks
		}
		ks.Kicked++
		ex := execs[t.ID]
		st.Executions += len(ex)
		ks.Executions += len(ex)

		res, hasRes := results[t.ID]
		_, isDead := dead[t.ID]
		switch {
		case hasRes && !res.IsErr:
			st.OK++
			ks.OK++
			if !t.Kind.good() {
				st.Wrong++
				st.sample("bad task succeeded", t.ID)
			} else if !returns(res, t.Payload) {
				st.Wrong++
				st.sample("wrong return value", t.ID)
			}
		case hasRes:
			st.Err++
			ks.Err++
			typ := "?"
			if res.Error != nil {
				typ = res.Error.ExcType
			}
			ks.ErrTypes[typ]++
			if t.Kind.good() {
				st.Wrong++
				st.sample("good task failed", t.ID)
			}
		case isDead:
			st.DeadLettered++
			ks.DeadLettered++
			if t.Kind.good() {
				st.Wrong++
				st.sample("good task dead-lettered", t.ID)
			}
		default:
			st.Lost++
			ks.Lost++
			if len(ex) == 0 {
				st.LostNeverRan++
				st.sample("lost, never ran", t.ID)
			} else {
				st.sample("lost after running", t.ID)
			}
		}
		if hasRes && len(ex) == 0 {
			st.Unrecorded++
			st.sample("result without execution record", t.ID)
		}

		dups := len(ex) - 1
		if dups <= 0 {
			continue
		}
		st.Duplicates += dups
		killed, disrupted := 0, 0
		var causes []EventKind // of the disrupted executions, killed ones first
		for _, e := range ex {
			k, cause := classify(e, events, grace)
			if k {
				killed++
				causes = append([]EventKind{KillWorker}, causes...)
			} else if cause != "" {
				causes = append(causes, cause)
			}
			if cause != "" {
				disrupted++
			}
		}
		st.DupFinishedBeforeBrokerKill += min(dups, finishedBeforeBrokerKill(ex, events, grace))
		if finishedBeforeBrokerKill(ex, events, grace) > 0 {
			st.sample("duplicate of a task finished before its broker plugin was killed", t.ID)
		}
		byKill := min(dups, killed)
		byFault := min(dups, disrupted) - byKill
		if st.DupByFault == nil {
			st.DupByFault = map[EventKind]int{}
		}
		for _, c := range causes[:byKill+byFault] {
			st.DupByFault[c]++
		}
		rest := dups - byKill - byFault
		byKick := 0
		if t.KickRetried {
			byKick = rest
		}
		st.DupKilledRunning += byKill
		st.DupDisrupted += byFault
		st.DupKickRetry += byKick
		st.DupUnexplained += rest - byKick
		if rest-byKick > 0 {
			st.sample("unexplained duplicate", t.ID)
		}
	}
	return st
}

// returns reports whether a success result carries payload as its value.
func returns(res *wire.Result, payload string) bool {
	var got string
	return json.Unmarshal(res.ReturnValue, &got) == nil && got == payload
}

// dispatchSlack is how long before an execution's start its delivery may
// have been received: a fault in that gap (the broker plugin killed after
// it handed the delivery over, before the task started) still strands the
// delivery's ack on a dead stream. Deliveries are received only for free
// task slots, so they start within milliseconds; 1s is generous.
const dispatchSlack = time.Second

// classify tells whether an execution was cut by a SIGKILL of its worker
// while it ran, and whether any injected fault touched its worker between
// dispatchSlack before its start and grace after its end (a fault after the
// task finished but before its ack was written costs the ack too); cause is
// the kind of the first such fault, "" when none.
func classify(e execution, events []Event, grace time.Duration) (killedRunning bool, cause EventKind) {
	for _, ev := range events {
		if ev.WorkerPID != 0 && ev.WorkerPID != e.workerPID {
			continue
		}
		if ev.Kind == KillWorker && !ev.At.Before(e.start) && (e.end.IsZero() || !e.end.Before(ev.At)) {
			killedRunning = true
		}
		windowEnd := e.end.Add(grace)
		if e.end.IsZero() {
			windowEnd = time.Unix(1<<62, 0)
		}
		if cause == "" && !ev.end().Before(e.start.Add(-dispatchSlack)) && !ev.At.After(windowEnd) {
			cause = ev.Kind
		}
	}
	return killedRunning, cause
}

// finishedBeforeBrokerKill counts the executions, all but the last to
// start, that had ended when their worker's broker plugin was SIGKILLed,
// the kill coming within grace after the end (while the ack could still be
// on its way).
func finishedBeforeBrokerKill(ex []execution, events []Event, grace time.Duration) int {
	n := 0
	last := 0
	for i, e := range ex {
		if e.start.After(ex[last].start) {
			last = i
		}
	}
	for i, e := range ex {
		if i == last || e.end.IsZero() {
			continue
		}
		for _, ev := range events {
			if ev.Kind == KillBroker && (ev.WorkerPID == 0 || ev.WorkerPID == e.workerPID) &&
				!ev.At.Before(e.end) && !ev.At.After(e.end.Add(grace)) {
				n++
				break
			}
		}
	}
	return n
}

// pairExecutions groups start lines per task id and gives each the end line
// of the same module process that follows it.
func pairExecutions(lines []execlog.Line) map[string][]execution {
	sorted := append([]execlog.Line(nil), lines...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].At.Before(sorted[j].At) })
	type key struct {
		id  string
		pid int
	}
	open := map[key][]int{} // indexes into out[id] waiting for an end
	out := map[string][]execution{}
	for _, l := range sorted {
		k := key{l.TaskID, l.ModulePID}
		switch l.Kind {
		case execlog.Start:
			out[l.TaskID] = append(out[l.TaskID], execution{workerPID: l.WorkerPID, modulePID: l.ModulePID, start: l.At})
			open[k] = append(open[k], len(out[l.TaskID])-1)
		case execlog.End:
			if q := open[k]; len(q) > 0 {
				out[l.TaskID][q[0]].end = l.At
				open[k] = q[1:]
			}
		}
	}
	return out
}

// Violations lists the broken guarantees of a run; empty means it passed.
func (s Stats) Violations() []string {
	var v []string
	if s.Lost > 0 {
		v = append(v, fmt.Sprintf("%d task(s) lost (%d never ran): kicked, no result, not dead-lettered; e.g. %v",
			s.Lost, s.LostNeverRan, s.Samples["lost, never ran"]))
	}
	if s.DupUnexplained > 0 {
		v = append(v, fmt.Sprintf("%d duplicate execution(s) not explained by an injected fault; e.g. %v", s.DupUnexplained, s.Samples["unexplained duplicate"]))
	}
	if s.DupFinishedBeforeBrokerKill > 0 {
		v = append(v, fmt.Sprintf("%d duplicate execution(s) of tasks that had finished before their broker plugin was killed: their acks were not carried to the restarted plugin; e.g. %v",
			s.DupFinishedBeforeBrokerKill, s.Samples["duplicate of a task finished before its broker plugin was killed"]))
	}
	if s.Wrong > 0 {
		var ex []string
		for _, p := range []string{"good task failed", "wrong return value", "good task dead-lettered", "bad task succeeded"} {
			if len(s.Samples[p]) > 0 {
				ex = append(ex, fmt.Sprintf("%s: %v", p, s.Samples[p]))
			}
		}
		v = append(v, fmt.Sprintf("%d task(s) with the wrong outcome; %v", s.Wrong, ex))
	}
	if s.Unrecorded > 0 {
		v = append(v, fmt.Sprintf("%d task(s) have a result but no execution record; e.g. %v", s.Unrecorded, s.Samples["result without execution record"]))
	}
	return v
}
