// Command compare runs taskiq-go, asynq and River side by side on this
// machine's Redis and PostgreSQL, alternating A B C A B C ... so that drift
// (thermal, page cache, noisy neighbours) hits every system alike, and prints
// one table of medians with each peer's ratio to taskiq-go.
//
// Every run is a fresh child process (this binary with -child, or
// bin/taskiq bench for taskiq-go), so no run inherits another's heap, GC
// state or connections. Run it from the bench/ directory:
//
//	go run ./cmd/compare            # or: make bench-compare (repo root)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// settings are shared by every system so the runs do equivalent work.
type settings struct {
	Tasks      int           `json:"tasks"`
	Workers    int           `json:"workers"`
	Kickers    int           `json:"kickers"`
	RiverBatch int           `json:"river_batch"`
	RedisAddr  string        `json:"redis_addr"`
	RedisDB    int           `json:"redis_db"`
	PgDSN      string        `json:"pg_dsn"`
	Timeout    time.Duration `json:"timeout"`
}

// outcome is what one child run prints as JSON on stdout.
type outcome struct {
	System      string  `json:"system"`
	Tasks       int64   `json:"tasks"`
	Seconds     float64 `json:"seconds"`
	TasksPerSec float64 `json:"tasks_per_sec"`
	KicksPerSec float64 `json:"kicks_per_sec"`
	// ClientCPU is the CPU of the queue's own processes (kicker + worker,
	// plus plugin processes for taskiq-go) during the run.
	ClientCPU float64 `json:"client_cpu_seconds"`
	// ServerCPU is redis-server or postgres CPU during the run.
	ServerCPU float64 `json:"server_cpu_seconds"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// Pressure is /proc/pressure/cpu "some avg10" when the run started.
	Pressure float64 `json:"cpu_pressure_before"`
}

var systems = []string{"taskiq-go", "asynq", "river"}

func main() {
	var s settings
	var (
		child     string
		runs      int
		taskiqBin string
		only      string
		jsonOut   string
		quietWait time.Duration
		quietMax  float64
	)
	flag.IntVar(&s.Tasks, "tasks", 50000, "tasks per run")
	flag.IntVar(&s.Workers, "workers", 256, "worker concurrency (max_async_tasks / Concurrency / MaxWorkers)")
	flag.IntVar(&s.Kickers, "kickers", 256, "kicking goroutines")
	flag.IntVar(&s.RiverBatch, "river-batch", 1000, "jobs per River InsertManyFast call (River's bulk insert path)")
	flag.StringVar(&s.RedisAddr, "redis", "127.0.0.1:6379", "Redis address")
	flag.IntVar(&s.RedisDB, "redis-db", 14, "Redis DB number; it is FLUSHDB'd before every run")
	flag.StringVar(&s.PgDSN, "pg", "postgres://postgres@127.0.0.1:5432/river_bench?pool_max_conns=16", "PostgreSQL DSN for River; the database is created if missing and river_job is truncated before every run")
	flag.DurationVar(&s.Timeout, "timeout", 3*time.Minute, "bound on one run")
	flag.IntVar(&runs, "runs", 3, "runs per system")
	flag.StringVar(&taskiqBin, "taskiq", "../bin/taskiq", "taskiq binary (built with `make build`, plugins next to it)")
	flag.StringVar(&only, "only", "", "comma-separated subset of systems: taskiq-go,asynq,river")
	flag.StringVar(&jsonOut, "json-out", "", "also write every run's outcome to this file")
	flag.DurationVar(&quietWait, "quiet-wait", 2*time.Minute, "before each run, wait up to this long for the machine to be quiet")
	flag.Float64Var(&quietMax, "quiet", 10, "quiet = /proc/pressure/cpu some avg10 below this (percent)")
	flag.StringVar(&child, "child", "", "internal: run one system in this process and print its outcome")
	flag.Parse()

	if child != "" {
		ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
		defer cancel()
		var o outcome
		var err error
		switch child {
		case "asynq":
			o, err = runAsynq(ctx, s)
		case "river":
			o, err = runRiver(ctx, s)
		default:
			err = fmt.Errorf("unknown -child %q", child)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "compare:", child+":", err)
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(o)
		return
	}
	if err := parent(s, runs, taskiqBin, only, jsonOut, quietWait, quietMax); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func parent(s settings, runs int, taskiqBin, only, jsonOut string, quietWait time.Duration, quietMax float64) error {
	chosen := systems
	if only != "" {
		chosen = nil
		for _, name := range strings.Split(only, ",") {
			if !slices.Contains(systems, name) {
				return fmt.Errorf("-only: unknown system %q (want %s)", name, strings.Join(systems, ","))
			}
			chosen = append(chosen, name)
		}
	}
	ctx := context.Background()
	bin, err := filepath.Abs(taskiqBin)
	if err != nil {
		return err
	}
	if slices.Contains(chosen, "taskiq-go") {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("taskiq binary %s: %w (run `make build` at the repository root)", bin, err)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.RedisAddr, DB: s.RedisDB})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", s.RedisAddr, err)
	}
	var pool *pgxpool.Pool
	if slices.Contains(chosen, "river") {
		if pool, err = setupRiverDB(ctx, s.PgDSN); err != nil {
			return err
		}
		defer pool.Close()
	}
	tmp, err := os.MkdirTemp("", "taskiq-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	hcl := filepath.Join(tmp, "taskiq.hcl")
	if err := os.WriteFile(hcl, []byte(taskiqConfig(filepath.Dir(bin), s)), 0o600); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "compare: %d tasks, %d workers, %d kickers, %d runs each of %s, alternating\n",
		s.Tasks, s.Workers, s.Kickers, runs, strings.Join(chosen, ", "))
	all := map[string][]outcome{}
	var log []outcome
	for round := 1; round <= runs; round++ {
		for _, sys := range chosen {
			if err := rdb.FlushDB(ctx).Err(); err != nil {
				return fmt.Errorf("FLUSHDB %d: %w", s.RedisDB, err)
			}
			if pool != nil {
				if _, err := pool.Exec(ctx, "TRUNCATE river_job"); err != nil {
					return fmt.Errorf("truncate river_job: %w", err)
				}
			}
			pressure := waitQuiet(quietWait, quietMax)
			o, err := runChild(ctx, sys, s, self, bin, hcl)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, sys, err)
			}
			o.Pressure = pressure
			fmt.Fprintf(os.Stderr, "  round %d  %-10s %8.0f tasks/s  %8.0f kicks/s  cpu %.2fs + server %.2fs  (cpu pressure before %.0f%%)\n",
				round, sys, o.TasksPerSec, o.KicksPerSec, o.ClientCPU, o.ServerCPU, pressure)
			all[sys] = append(all[sys], o)
			log = append(log, o)
		}
	}
	printTable(os.Stdout, s, chosen, all)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"settings": s, "runs": log}, "", "  ")
		if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// taskiqConfig is taskiq-go with the Redis stream broker and the Redis result
// backend, each a plugin process, on the benchmark's Redis DB.
func taskiqConfig(pluginDir string, s settings) string {
	url := fmt.Sprintf("redis://%s/%d", s.RedisAddr, s.RedisDB)
	return fmt.Sprintf(`plugin_dir = %q
broker "default" {
  plugin = "taskiq-redis"
  config {
    url   = %q
    queue = "taskiq_bench"
    mode  = "stream"
  }
}
result_backend "default" {
  plugin = "taskiq-redis"
  config {
    url        = %q
    result_ttl = "10m"
  }
}
worker {
  max_async_tasks = %d
}
`, pluginDir, url, url, s.Workers)
}

// runChild runs one measured run in a fresh process, bounded by s.Timeout.
func runChild(ctx context.Context, sys string, s settings, self, taskiqBin, hcl string) (outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout+30*time.Second)
	defer cancel()
	var cmd *exec.Cmd
	if sys == "taskiq-go" {
		cmd = exec.CommandContext(ctx, taskiqBin, "bench", "--config", hcl, "--json",
			"--tasks", strconv.Itoa(s.Tasks), "--concurrency", strconv.Itoa(s.Kickers),
			"--max-async-tasks", strconv.Itoa(s.Workers), "--timeout", s.Timeout.String())
	} else {
		args := []string{"-child", sys, "-tasks", strconv.Itoa(s.Tasks), "-workers", strconv.Itoa(s.Workers),
			"-kickers", strconv.Itoa(s.Kickers), "-river-batch", strconv.Itoa(s.RiverBatch),
			"-redis", s.RedisAddr, "-redis-db", strconv.Itoa(s.RedisDB), "-pg", s.PgDSN, "-timeout", s.Timeout.String()}
		cmd = exec.CommandContext(ctx, self, args...)
	}
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 10 * time.Second
	redisBefore := serverCPU("redis-server")
	out, err := cmd.Output()
	redisCPU := serverCPU("redis-server") - redisBefore
	if err != nil {
		return outcome{}, fmt.Errorf("%s: %w", cmd.Path, err)
	}
	if sys != "taskiq-go" {
		var o outcome
		if err := json.Unmarshal(out, &o); err != nil {
			return outcome{}, fmt.Errorf("child output %q: %w", out, err)
		}
		if sys == "asynq" {
			o.ServerCPU = redisCPU
		}
		return o, nil
	}
	var rep struct {
		Executed    int64   `json:"executed"`
		Seconds     float64 `json:"seconds"`
		TasksPerSec float64 `json:"tasks_per_sec"`
		KicksPerSec float64 `json:"kicks_per_sec"`
		TotalCPU    float64 `json:"total_cpu_seconds"`
		Processes   []struct {
			PeakRSSMB float64 `json:"peak_rss_mb"`
		} `json:"processes"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return outcome{}, fmt.Errorf("taskiq bench output %q: %w", out, err)
	}
	o := outcome{System: sys, Tasks: rep.Executed, Seconds: rep.Seconds, TasksPerSec: rep.TasksPerSec,
		KicksPerSec: rep.KicksPerSec, ClientCPU: rep.TotalCPU, ServerCPU: redisCPU}
	for _, p := range rep.Processes {
		o.PeakRSSMB += p.PeakRSSMB
	}
	return o, nil
}

// setupRiverDB creates the River database if missing and migrates it.
func setupRiverDB(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("-pg %q: %w", dsn, err)
	}
	cfg := pcfg.ConnConfig
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("postgres %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", cfg.Database).Scan(&exists)
	if err == nil && !exists {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{cfg.Database}.Sanitize())
	}
	_ = conn.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", cfg.Database, err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, err
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		pool.Close()
		return nil, fmt.Errorf("river migrate: %w", err)
	}
	return pool, nil
}

// serverCPU sums the CPU seconds of every process whose name is name.
func serverCPU(name string) float64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total float64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || s[open+1:end] != name {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total += (u + st) / 100 // USER_HZ
	}
	return total
}

// cpuPressure is /proc/pressure/cpu "some avg10", -1 when unavailable.
func cpuPressure() float64 {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return -1
	}
	for _, f := range strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) {
		if v, ok := strings.CutPrefix(f, "avg10="); ok {
			x, _ := strconv.ParseFloat(v, 64)
			return x
		}
	}
	return -1
}

// waitQuiet waits up to max for CPU pressure to fall below limit, so runs
// do not measure whatever else the machine is doing; it returns the
// pressure it started the run with.
func waitQuiet(max time.Duration, limit float64) float64 {
	deadline := time.Now().Add(max)
	p := cpuPressure()
	if p >= limit && max > 0 {
		fmt.Fprintf(os.Stderr, "  waiting for a quiet machine (cpu pressure %.0f%%)\n", p)
	}
	for p >= limit && time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
		p = cpuPressure()
	}
	return p
}

// selfCPU is this process's user+system CPU time.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// selfPeakRSSMB is this process's peak resident set.
func selfPeakRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // kB on Linux
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func printTable(w *os.File, s settings, chosen []string, all map[string][]outcome) {
	pick := func(sys string, f func(outcome) float64) []float64 {
		var xs []float64
		for _, o := range all[sys] {
			xs = append(xs, f(o))
		}
		return xs
	}
	base := median(pick("taskiq-go", func(o outcome) float64 { return o.TasksPerSec }))
	var pressures []float64
	for _, sys := range chosen {
		pressures = append(pressures, pick(sys, func(o outcome) float64 { return o.Pressure })...)
	}
	fmt.Fprintf(w, "\n%d no-op tasks per run, worker concurrency %d, %d kicking goroutines, medians of %d runs (alternating)\n\n",
		s.Tasks, s.Workers, s.Kickers, len(all[chosen[0]]))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\ttasks/s\tmin\tmax\tkicks/s\tclient CPU s\tserver CPU s\tCPU ms / 1k tasks\tpeak RSS MB\tvs taskiq-go\t")
	for _, sys := range chosen {
		tps := pick(sys, func(o outcome) float64 { return o.TasksPerSec })
		cpu := median(pick(sys, func(o outcome) float64 { return o.ClientCPU }))
		srv := median(pick(sys, func(o outcome) float64 { return o.ServerCPU }))
		per := (cpu + srv) * 1000 / (float64(s.Tasks) / 1000)
		ratio := "-"
		if base > 0 {
			ratio = fmt.Sprintf("%.2fx", median(tps)/base)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.0f\t%.0f\t%s\t\n", sys, median(tps), slices.Min(tps), slices.Max(tps),
			median(pick(sys, func(o outcome) float64 { return o.KicksPerSec })), cpu, srv, per,
			median(pick(sys, func(o outcome) float64 { return o.PeakRSSMB })), ratio)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nCPU pressure (/proc/pressure/cpu some avg10) before the runs: median %.0f%%, max %.0f%%.\n", median(pressures), slices.Max(pressures))
	fmt.Fprintln(w, "vs taskiq-go = peer's median tasks/s ÷ taskiq-go's (below 1.00x: taskiq-go is faster).")
}

var errIncomplete = errors.New("not every task ran before the timeout")
