package bench

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// envEchoSocket makes the test binary the far end of
// BenchmarkProcessWakeup (see TestMain): it echoes on the unix socket this
// names.
const envEchoSocket = "TASKIQ_BENCH_ECHO_SOCKET"

// echo is the far end of BenchmarkProcessWakeup: it echoes on the unix
// socket at path until the benchmark closes its end; the exit code.
func echo(path string) int {
	l, err := net.Listen("unix", path)
	if err != nil {
		return 1
	}
	c, err := l.Accept()
	if err != nil {
		return 1
	}
	b := make([]byte, 64)
	for {
		n, err := c.Read(b)
		if err != nil {
			return 0 // the benchmark closed its end
		}
		if _, err := c.Write(b[:n]); err != nil {
			return 0
		}
	}
}

// BenchmarkProcessWakeup is the floor under every message between two
// processes at a low rate: a few bytes to another process over a unix
// socket and back, one round trip per millisecond (1k/s, as in `taskiq
// bench --rate 1000`), nothing else in either process. It reports the CPU
// each process spends per round trip (client-cpu-µs/op includes waking
// for the pace), which is the cost of a process waking to read one
// message: the kernel's and, on a virtual machine, the hypervisor's work
// to wake an idle CPU, not the bytes. "back-to-back" sends the next round
// trip at once, so neither process goes idle: the same bytes and system
// calls without the wake-ups. Run it with -benchtime 3000x; under
// `taskset -c 0` both processes share one CPU.
func BenchmarkProcessWakeup(b *testing.B) {
	b.Run("paced-1ms", func(b *testing.B) { roundTrips(b, time.Millisecond) })
	b.Run("back-to-back", func(b *testing.B) { roundTrips(b, 0) })
}

// roundTrips runs b.N round trips to an echo process, one per pace (0: no
// pause between them), and reports each process's CPU per round trip.
func roundTrips(b *testing.B, pace time.Duration) {
	path := filepath.Join(b.TempDir(), "echo.sock")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envEchoSocket+"="+path)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var c net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var err error
		if c, err = net.Dial("unix", path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			b.Fatalf("the echo process did not listen: %v", err)
		}
	}
	buf := make([]byte, 64)
	var tick <-chan time.Time
	if pace > 0 {
		t := time.NewTicker(pace)
		defer t.Stop()
		tick = t.C
	}
	start := processCPUTime()
	b.ResetTimer()
	for range b.N {
		if tick != nil {
			<-tick
		}
		if _, err := c.Write(buf[:16]); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	client := processCPUTime() - start
	_ = c.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("echo process: %v", err)
	}
	server := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	b.ReportMetric(float64(client.Microseconds())/float64(b.N), "client-cpu-µs/op")
	b.ReportMetric(float64(server.Microseconds())/float64(b.N), "server-cpu-µs/op")
}

func processCPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
