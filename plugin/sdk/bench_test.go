package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// BenchmarkStreamThroughput moves b.N messages through a broker plugin
// process: batched kicks from one goroutine, Listen with batched acks in
// another, both crossing the process boundary. It reports the CPU both
// processes spent per message: the cost of three crossings (kick,
// delivery, settlement) at the best batching the protocol has.
func BenchmarkStreamThroughput(b *testing.B) {
	const batch = 100
	c := sdktest.Launch(b, sdk.KindBroker, `{"queue":"bench"}`)
	br := c.Broker()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, err := br.Listen(ctx, sdk.ListenRequest{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := []byte(`{"task_id":"0123456789abcdef0123456789abcdef","task_name":"bench:noop","labels":{},"labels_types":{},"args":[1,2],"kwargs":{}}`)

	hostCPU, pluginCPU := processCPU(b, os.Getpid()), processCPU(b, c.Pid())
	b.ResetTimer()
	start := time.Now()
	kickErr := make(chan error, 1)
	go func() {
		for sent := 0; sent < b.N; {
			n := min(batch, b.N-sent)
			msgs := make([]sdk.Outgoing, n)
			for i := range msgs {
				msgs[i] = sdk.Outgoing{TaskID: fmt.Sprint(sent + i), TaskName: "bench:noop", Body: body}
			}
			if err := br.Kick(ctx, msgs); err != nil {
				kickErr <- err
				return
			}
			sent += n
		}
		kickErr <- nil
	}()
	for got := 0; got < b.N; {
		ds, err := s.Recv(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		ss := make([]sdk.Settlement, len(ds))
		for i, d := range ds {
			ss[i] = sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleAck}
		}
		if err := s.Settle(ctx, ss); err != nil {
			b.Fatal(err)
		}
		got += len(ds)
	}
	if err := <-kickErr; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric((processCPU(b, os.Getpid())-hostCPU).Seconds()*1e6/float64(b.N), "host-cpu-µs/msg")
	b.ReportMetric((processCPU(b, c.Pid())-pluginCPU).Seconds()*1e6/float64(b.N), "plugin-cpu-µs/msg")
}

// BenchmarkMiddlewareHooks calls pre_send, pre_execute and post_execute
// of a middleware plugin process (each sets a label, as the middleware of
// `make bench-middleware` does) from 64 goroutines, as a busy worker does,
// and reports the CPU both processes spent per hook call (host: this
// process; plugin: /proc/<pid>/stat). TASKIQ_BENCH_PLUGIN_CPUPROFILE=path
// profiles the plugin.
func BenchmarkMiddlewareHooks(b *testing.B) {
	var opts []sdktest.Option
	if p := os.Getenv("TASKIQ_BENCH_PLUGIN_CPUPROFILE"); p != "" {
		opts = append(opts, sdktest.WithEnv(sdk.EnvCPUProfile+"="+p))
	}
	c := sdktest.Launch(b, sdk.KindMiddleware, `{"trail":true}`, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	mw := c.Middleware([]sdk.Hook{sdk.HookPreSend, sdk.HookPreExecute, sdk.HookPostExecute})
	if !sdk.UsesHookStream(mw) {
		b.Fatal("the middleware does not use the Hooks stream")
	}
	pre, exec, post := mw.(sdk.PreSender), mw.(sdk.PreExecuter), mw.(sdk.PostExecuter)
	hostCPU, pluginCPU := processCPU(b, os.Getpid()), processCPU(b, c.Pid())
	b.SetParallelism(32) // 64 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			msg := &wire.Message{TaskID: fmt.Sprint(i), TaskName: "bench:noop",
				Labels: map[string]any{"a": "b", "n": int64(1)}, Args: []json.RawMessage{json.RawMessage(`1`)}}
			if err := pre.PreSend(ctx, msg); err != nil {
				b.Error(err)
				return
			}
			if err := exec.PreExecute(ctx, msg); err != nil {
				b.Error(err)
				return
			}
			res := &wire.Result{ReturnValue: json.RawMessage(`1`), Labels: msg.Labels}
			if err := post.PostExecute(ctx, msg, res); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	calls := float64(3 * b.N)
	b.ReportMetric((processCPU(b, os.Getpid())-hostCPU).Seconds()*1e6/calls, "host-cpu-µs/call")
	b.ReportMetric((processCPU(b, c.Pid())-pluginCPU).Seconds()*1e6/calls, "plugin-cpu-µs/call")
}

// processCPU reads the user and system CPU time of process pid.
func processCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}
