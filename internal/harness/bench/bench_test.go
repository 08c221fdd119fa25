package bench

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
)

func TestParseWork(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Work{
		"noop":        {Kind: "noop"},
		"sleep:2ms":   {Kind: "sleep", D: 2 * time.Millisecond},
		"cpu:150us":   {Kind: "cpu", D: 150 * time.Microsecond},
		"sleep:0s":    {Kind: "sleep"},
		"cpu:1.5ms":   {Kind: "cpu", D: 1500 * time.Microsecond},
		"sleep:100ns": {Kind: "sleep", D: 100},
	} {
		got, err := ParseWork(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "spin", "sleep", "sleep:", "cpu:-1ms", "noop:1ms", "sleep:1"} {
		_, err := ParseWork(in)
		require.Error(t, err, in)
	}
	require.Equal(t, "sleep:2ms", Work{Kind: "sleep", D: 2 * time.Millisecond}.String())
	require.Equal(t, "noop", Work{}.String())
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	require.Nil(t, summarize(nil))
	ns := make([]int64, 0, 100)
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ns = append(ns, int64(i)*int64(time.Millisecond))
	}
	l := summarize(ns)
	require.Equal(t, 100, l.Count)
	require.Equal(t, 50.0, l.P50)
	require.Equal(t, 95.0, l.P95)
	require.Equal(t, 99.0, l.P99)
	require.Equal(t, 100.0, l.Max)
	require.InDelta(t, 50.5, l.Mean, 1e-9)

	one := summarize([]int64{int64(1500 * time.Microsecond)})
	require.Equal(t, 1.5, one.P50)
	require.Equal(t, 1.5, one.P99)
}

func TestPlannedIsCappedByTasksAndRate(t *testing.T) {
	t.Parallel()
	o := Options{Tasks: 100000, Rate: 1000, Duration: 10 * time.Second}
	require.EqualValues(t, 10000, o.planned())
	o = Options{Tasks: 500, Rate: 1000, Duration: 10 * time.Second}
	require.EqualValues(t, 500, o.planned())
	o = Options{Tasks: 300}
	require.EqualValues(t, 300, o.planned())
}

func TestOptionsDefaultsRejectRateWithoutDuration(t *testing.T) {
	t.Parallel()
	o := Options{Rate: 10}
	require.ErrorContains(t, o.defaults(), "--duration")
	o = Options{}
	require.NoError(t, o.defaults())
	require.Equal(t, "taskiq.hcl", o.Config)
	require.Equal(t, 100000, o.Tasks)
	require.Equal(t, 8, o.Concurrency)
}

func TestSnapshotSeesThisProcess(t *testing.T) {
	t.Parallel()
	snap := snapshot()
	self, ok := snap[os.Getpid()]
	require.True(t, ok)
	require.Equal(t, "host", self.Role)
	require.NotEmpty(t, self.Name)
	require.Positive(t, self.PeakRSSMB)
	require.GreaterOrEqual(t, self.CPUSeconds, 0.0)
}

func TestDiffSnapshots(t *testing.T) {
	t.Parallel()
	before := map[int]ProcStat{1: {PID: 1, Role: "host", cpuTicks: 100}}
	after := map[int]ProcStat{
		1: {PID: 1, Role: "host", Name: "taskiq", cpuTicks: 350, PeakRSSMB: 30},
		7: {PID: 7, Role: "plugin", Name: "b", cpuTicks: 20},
		5: {PID: 5, Role: "plugin", Name: "a", cpuTicks: 10},
	}
	got := diffSnapshots(before, after)
	require.Len(t, got, 3)
	require.Equal(t, 1, got[0].PID)
	require.Equal(t, 2.5, got[0].CPUSeconds)
	require.Equal(t, 30.0, got[0].PeakRSSMB)
	require.Equal(t, "a", got[1].Name)
	require.Equal(t, 0.1, got[1].CPUSeconds, "a process born during the run counts from zero")
	require.Equal(t, "b", got[2].Name)
}

func TestSnapshotReadsCurrentRSS(t *testing.T) {
	t.Parallel()
	self := snapshot()[os.Getpid()]
	require.Positive(t, self.RSSMB)
	require.GreaterOrEqual(t, self.PeakRSSMB, self.RSSMB, "the peak is never below the current resident set")
	require.InDelta(t, self.RSSMB, self.RSSAnonMB+self.RSSFileMB, 1, "anon and file pages make up the resident set (shmem aside)")
}

func TestStatusMB(t *testing.T) {
	t.Parallel()
	status := []byte("Name:\ttaskiq\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n")
	require.Equal(t, 20.0, statusMB(status, "VmHWM:"))
	require.Equal(t, 10.0, statusMB(status, "VmRSS:"))
	require.Equal(t, 0.0, statusMB(status, "VmSwap:"))
}

func TestOptionsDefaultsIdle(t *testing.T) {
	t.Parallel()
	o := Options{Idle: true}
	require.NoError(t, o.defaults())
	require.Equal(t, DefaultIdle, o.Duration)
	o = Options{Idle: true, Duration: 2 * time.Second}
	require.NoError(t, o.defaults())
	require.Equal(t, 2*time.Second, o.Duration)
	for _, o := range []Options{
		{Idle: true, KickOnly: true},
		{Idle: true, Results: true},
		{Idle: true, Rate: 10, Duration: time.Second},
		{Idle: true, Duration: -time.Second},
	} {
		require.Error(t, o.defaults(), "%+v", o)
	}
}

func TestLabelPlugins(t *testing.T) {
	t.Parallel()
	ps := []ProcStat{{PID: 1, Role: "host"}, {PID: 7, Role: "plugin"}, {PID: 9, Role: "plugin"}}
	labelPlugins(ps, []core.PluginProcess{
		{Kind: "broker", Name: "default", PID: 7, StartDuration: 12500 * time.Microsecond},
		{Kind: "result_backend", Name: "default", PID: 0},
	})
	require.Empty(t, ps[0].Plugin)
	require.Equal(t, "broker.default", ps[1].Plugin)
	require.Equal(t, 12.5, ps[1].StartMS)
	require.Empty(t, ps[2].Plugin, "a process the App did not start stays unlabelled")
}

func TestIdleReportText(t *testing.T) {
	t.Parallel()
	rep := &Report{
		Config: "taskiq.hcl", Brokers: "default", Mode: "idle", IdleSeconds: 5, LoadMS: 40,
		WorkerReadyMS: 1.5, MaxAsyncTasks: 100, NumCPU: 2, GoVersion: "go1",
		Processes: []ProcStat{
			{PID: 1, Name: "taskiq", Role: "host", RSSMB: 14, RSSAnonMB: 4, RSSFileMB: 10, PeakRSSMB: 16},
			{PID: 2, Name: "taskiq-inmemory", Role: "plugin", Plugin: "broker.default", StartMS: 18.5, RSSMB: 9, PeakRSSMB: 9},
			{PID: 3, Name: "taskiq-inmemory", Role: "plugin", Plugin: "result_backend.default", StartMS: 17.5, RSSMB: 8, PeakRSSMB: 8},
		},
	}
	var b strings.Builder
	rep.WriteText(&b)
	out := b.String()
	require.Contains(t, out, "idle mode")
	require.Contains(t, out, "core.Load 40.0 ms (2 plugin processes started one after another, 36.0 ms of it)")
	require.Contains(t, out, "broker.default")
	require.Contains(t, out, "start   18.5 ms")
	require.Contains(t, out, "rss   14.0 MB (anon   4.0, file  10.0)")
	require.Contains(t, out, "total rss 31.0 MB")
	require.NotContains(t, out, "kicks/s", "an idle run kicks nothing")
	require.NotContains(t, out, "was not idle")

	rep.Executed = 3
	b.Reset()
	rep.WriteText(&b)
	require.Contains(t, b.String(), "3 benchmark tasks arrived and ran during the idle wait")
}

func TestCPUPerTaskMS(t *testing.T) {
	require.InDelta(t, 0.98, cpuPerTaskMS(9.8, 10000, 10000), 1e-9, "over the tasks executed")
	require.InDelta(t, 0.5, cpuPerTaskMS(5, 0, 10000), 1e-9, "kick-only: over the tasks kicked")
	require.Zero(t, cpuPerTaskMS(1, 0, 0), "idle: no tasks")
}

func TestModuleSpan(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [2]int64
		ok   bool
	}{
		{`[1796319070668000000,1796319070668000123]`, [2]int64{1796319070668000000, 1796319070668000123}, true},
		{`[-5,0]`, [2]int64{-5, 0}, true},
		{` [ 1 , 2 ] `, [2]int64{1, 2}, true}, // not the module's form: encoding/json reads it
		{`[1,2,3]`, [2]int64{1, 2}, true},     // as encoding/json: the rest is dropped
		{`[1]`, [2]int64{1, 0}, true},         // encoding/json leaves the rest zero
		{`{"a":1}`, [2]int64{}, false},
		{`[1,"x"]`, [2]int64{}, false},
		{``, [2]int64{}, false},
	} {
		got, err := moduleSpan([]byte(tc.in))
		if tc.ok {
			require.NoError(t, err, tc.in)
			require.Equal(t, tc.want, got, tc.in)
		} else {
			require.Error(t, err, tc.in)
		}
	}
}
