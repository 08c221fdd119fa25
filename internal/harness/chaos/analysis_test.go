package chaos

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/harness/chaos/execlog"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

var t0 = time.Unix(1700000000, 0)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func ok(payload string) *wire.Result {
	b, _ := json.Marshal(payload)
	return &wire.Result{ReturnValue: b}
}

func failed(typ string) *wire.Result {
	return &wire.Result{IsErr: true, Error: &wire.Error{ExcType: typ}}
}

// execLines returns the start and end lines of one execution; end < 0: the
// process died before the end line.
func execLines(id string, worker, start, end int) []execlog.Line {
	ls := []execlog.Line{{Kind: execlog.Start, TaskID: id, WorkerPID: worker, ModulePID: worker + 1, At: at(start)}}
	if end >= 0 {
		ls = append(ls, execlog.Line{Kind: execlog.End, TaskID: id, WorkerPID: worker, ModulePID: worker + 1, At: at(end), Outcome: "ok"})
	}
	return ls
}

func lines(groups ...[]execlog.Line) []execlog.Line {
	var out []execlog.Line
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

const grace = 2 * time.Second

func TestAnalyzeCleanRun(t *testing.T) {
	t.Parallel()
	tasks := []Task{{ID: "a", Kind: KindEcho, Payload: "pa"}, {ID: "b", Kind: KindEcho, Payload: "pb"}}
	st := Analyze(tasks, map[string]*wire.Result{"a": ok("pa"), "b": ok("pb")}, nil,
		lines(execLines("a", 10, 0, 50), execLines("b", 20, 0, 50)), nil, grace)
	require.Equal(t, 2, st.OK)
	require.Equal(t, 2, st.Executions)
	require.Zero(t, st.Duplicates)
	require.Empty(t, st.Violations())
}

func TestAnalyzeLost(t *testing.T) {
	t.Parallel()
	tasks := []Task{{ID: "ran", Kind: KindEcho}, {ID: "never", Kind: KindEcho}, {ID: "dead", Kind: KindPanic}}
	st := Analyze(tasks, nil, map[string]string{"dead": "exceeded max_attempts (10)"},
		lines(execLines("ran", 10, 0, -1), execLines("dead", 10, 0, 5)), nil, grace)
	require.Equal(t, 2, st.Lost)
	require.Equal(t, 1, st.LostNeverRan)
	require.Equal(t, 1, st.DeadLettered)
	v := st.Violations()
	require.Len(t, v, 1)
	require.Contains(t, v[0], "2 task(s) lost (1 never ran)")
}

func TestAnalyzeDuplicateOnKilledWorker(t *testing.T) {
	t.Parallel()
	tasks := []Task{{ID: "a", Kind: KindEcho, Payload: "pa"}}
	// Started on worker 10, which was killed 50ms later; ran again on 20.
	st := Analyze(tasks, map[string]*wire.Result{"a": ok("pa")}, nil,
		lines(execLines("a", 10, 0, -1), execLines("a", 20, 3500, 3600)),
		[]Event{{Kind: KillWorker, WorkerPID: 10, At: at(50)}}, grace)
	require.Equal(t, 1, st.Duplicates)
	require.Equal(t, 1, st.DupKilledRunning)
	require.Equal(t, 1, st.DupByFault[KillWorker])
	require.Empty(t, st.Violations())
}

func TestAnalyzeKillOfAnotherWorkerExplainsNothing(t *testing.T) {
	t.Parallel()
	tasks := []Task{{ID: "a", Kind: KindEcho, Payload: "pa"}}
	st := Analyze(tasks, map[string]*wire.Result{"a": ok("pa")}, nil,
		lines(execLines("a", 10, 0, 100), execLines("a", 20, 3500, 3600)),
		[]Event{{Kind: KillWorker, WorkerPID: 30, At: at(50)}}, grace)
	require.Equal(t, 1, st.DupUnexplained)
	require.Len(t, st.Violations(), 1)
	require.Equal(t, []string{"a"}, st.Samples["unexplained duplicate"])
}

func TestAnalyzeFaultWindows(t *testing.T) {
	t.Parallel()
	tasks := []Task{{ID: "a", Kind: KindEcho, Payload: "pa"}}
	for name, tc := range map[string]struct {
		ev        Event
		explained bool
	}{
		// The broker plugin died after handing the delivery over, just
		// before the task started: the ack has nowhere to go.
		"broker killed just before start": {Event{Kind: KillBroker, WorkerPID: 10, At: at(1000 - 300)}, true},
		"broker killed long before start": {Event{Kind: KillBroker, WorkerPID: 10, At: at(1000 - 3000)}, false},
		"results killed within grace":     {Event{Kind: KillResults, WorkerPID: 10, At: at(1100 + 500)}, true},
		"results killed after grace":      {Event{Kind: KillResults, WorkerPID: 10, At: at(1100 + 5000)}, false},
		"redis down across the task":      {Event{Kind: RedisDown, At: at(500), Until: at(2500)}, true},
		"redis down long before":          {Event{Kind: RedisDown, At: at(-9000), Until: at(-5000)}, false},
		// Full Redis: the result of the first run could not be saved.
		"redis full across the task": {Event{Kind: RedisOOM, At: at(900), Until: at(1050)}, true},
		"redis full long after":      {Event{Kind: RedisOOM, At: at(20000), Until: at(30000)}, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := Analyze(tasks, map[string]*wire.Result{"a": ok("pa")}, nil,
				lines(execLines("a", 10, 1000, 1100), execLines("a", 20, 5000, 5100)), []Event{tc.ev}, grace)
			require.Equal(t, 1, st.Duplicates)
			if tc.explained {
				require.Equal(t, 1, st.DupDisrupted)
				require.Equal(t, 1, st.DupByFault[tc.ev.Kind])
				require.Zero(t, st.DupUnexplained)
			} else {
				require.Equal(t, 1, st.DupUnexplained)
			}
		})
	}
}

func TestAnalyzeExplainsAtMostTheDisruptedExecutions(t *testing.T) {
	t.Parallel()
	tasks := []Task{{ID: "a", Kind: KindEcho, Payload: "pa"}}
	// Three runs, one cut by a kill: one duplicate explained, one not.
	st := Analyze(tasks, map[string]*wire.Result{"a": ok("pa")}, nil,
		lines(execLines("a", 10, 0, -1), execLines("a", 20, 4000, 4100), execLines("a", 20, 9000, 9100)),
		[]Event{{Kind: KillWorker, WorkerPID: 10, At: at(50)}}, grace)
	require.Equal(t, 2, st.Duplicates)
	require.Equal(t, 1, st.DupKilledRunning)
	require.Equal(t, 1, st.DupUnexplained)
}

func TestAnalyzeKickRetryExplainsDuplicates(t *testing.T) {
	t.Parallel()
	tasks := []Task{{ID: "a", Kind: KindEcho, Payload: "pa", KickRetried: true}}
	st := Analyze(tasks, map[string]*wire.Result{"a": ok("pa")}, nil,
		lines(execLines("a", 10, 0, 100), execLines("a", 20, 10, 110)), nil, grace)
	require.Equal(t, 1, st.DupKickRetry)
	require.Empty(t, st.Violations())
}

func TestAnalyzeOutcomes(t *testing.T) {
	t.Parallel()
	tasks := []Task{
		{ID: "good", Kind: KindEcho, Payload: "p1"},
		{ID: "good-failed", Kind: KindEcho, Payload: "p2"},
		{ID: "good-wrong", Kind: KindEcho, Payload: "p3"},
		{ID: "good-dead", Kind: KindEcho, Payload: "p4"},
		{ID: "panic", Kind: KindPanic},
		{ID: "hang", Kind: KindHang},
		{ID: "memhog-dead", Kind: KindMemhog},
		{ID: "panic-succeeded", Kind: KindPanic},
	}
	results := map[string]*wire.Result{
		"good": ok("p1"), "good-failed": failed("ValueError"), "good-wrong": ok("p-other"),
		"panic": failed("Panic"), "hang": failed("TaskiqResultTimeoutError"), "panic-succeeded": ok(""),
	}
	dead := map[string]string{"good-dead": "x", "memhog-dead": "y"}
	var ls []execlog.Line
	for i, tk := range tasks {
		ls = append(ls, execLines(tk.ID, 10, i, i+1)...)
	}
	st := Analyze(tasks, results, dead, ls, nil, grace)
	require.Equal(t, 4, st.Wrong)
	require.Equal(t, []string{"good-failed"}, st.Samples["good task failed"])
	require.Equal(t, []string{"good-wrong"}, st.Samples["wrong return value"])
	require.Equal(t, []string{"good-dead"}, st.Samples["good task dead-lettered"])
	require.Equal(t, []string{"panic-succeeded"}, st.Samples["bad task succeeded"])
	require.Equal(t, 1, st.ByKind[KindPanic].ErrTypes["Panic"])
	require.Equal(t, 1, st.ByKind[KindHang].ErrTypes["TaskiqResultTimeoutError"])
	require.Equal(t, 1, st.ByKind[KindMemhog].DeadLettered)
	require.Zero(t, st.Lost)
}

func TestAnalyzeResultWithoutExecutionRecord(t *testing.T) {
	t.Parallel()
	tasks := []Task{{ID: "a", Kind: KindEcho, Payload: "pa"}}
	st := Analyze(tasks, map[string]*wire.Result{"a": ok("pa")}, nil, nil, nil, grace)
	require.Equal(t, 1, st.Unrecorded)
	require.Len(t, st.Violations(), 1)
}

func TestCheckFaults(t *testing.T) {
	t.Parallel()
	require.Len(t, checkFaults("kill-plugins", []Event{{Kind: KillBroker}}), 1)
	require.Empty(t, checkFaults("kill-plugins", []Event{{Kind: KillBroker}, {Kind: KillResults}}))
	require.Empty(t, checkFaults("bad-tasks", nil))
	require.Len(t, checkFaults("redis-oom", nil), 1, "a Redis that refused no write proves nothing")
	require.Empty(t, checkFaults("redis-oom", []Event{{Kind: RedisOOM}}))
}

func TestPlanSpreadsBadTasks(t *testing.T) {
	t.Parallel()
	r := &run{opts: Options{Tasks: 100, Bad: 4}, sc: Scenario{Name: "bad-tasks", bad: true}}
	r.opts.defaults()
	r.rng = newRand(1)
	tasks := r.plan()
	require.Len(t, tasks, 100+3*4)
	ids := map[string]bool{}
	payloads := map[string]bool{}
	kinds := map[TaskKind]int{}
	for _, tk := range tasks {
		ids[tk.ID], payloads[tk.Payload] = true, true
		kinds[tk.Kind]++
	}
	require.Len(t, ids, len(tasks), "task ids are unique")
	require.Len(t, payloads, len(tasks), "payloads are unique")
	require.Equal(t, map[TaskKind]int{KindEcho: 100, KindPanic: 4, KindHang: 4, KindMemhog: 4}, kinds)
	first, last := -1, -1
	for i, tk := range tasks {
		if tk.Kind != KindEcho {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	require.Less(t, first, len(tasks)/4, "bad tasks start early")
	require.Greater(t, last, 3*len(tasks)/4, "and go on to the end")
}

// TestAnalyzeDuplicateAfterFinishBeforeBrokerKill: a task that had ended
// when its worker's broker plugin was killed, and ran again, is explained
// by the fault but still a violation: the broker's ids are stable, so the
// ack had to reach the restarted plugin. One killed while it ran is not.
func TestAnalyzeDuplicateAfterFinishBeforeBrokerKill(t *testing.T) {
	t.Parallel()
	tasks := []Task{{ID: "a", Kind: KindEcho, Payload: "pa"}, {ID: "b", Kind: KindEcho, Payload: "pb"}}
	st := Analyze(tasks, map[string]*wire.Result{"a": ok("pa"), "b": ok("pb")}, nil,
		lines(execLines("a", 10, 1000, 1100), execLines("a", 20, 5000, 5100),
			execLines("b", 10, 1000, 1400), execLines("b", 20, 5000, 5100)),
		[]Event{{Kind: KillBroker, WorkerPID: 10, At: at(1200)}}, grace)
	require.Equal(t, 2, st.Duplicates)
	require.Equal(t, 2, st.DupDisrupted)
	require.Equal(t, 1, st.DupFinishedBeforeBrokerKill)
	v := st.Violations()
	require.Len(t, v, 1)
	require.Contains(t, v[0], "1 duplicate execution(s) of tasks that had finished before their broker plugin was killed")
	require.Contains(t, v[0], "[a]")
}
