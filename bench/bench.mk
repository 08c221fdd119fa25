# Benchmark targets, included by the root Makefile (-include bench/bench.mk).
# bench/ is its own Go module, so asynq, River and pgx never enter the main
# module's go.mod. Needs Redis on 127.0.0.1:6379 (DB 14 is flushed) and
# PostgreSQL on 127.0.0.1:5432 (database river_bench is created).

BENCH_TASKS ?= 50000
BENCH_WORKERS ?= 256
BENCH_KICKERS ?= 256
BENCH_RUNS ?= 3
BENCH_FLAGS ?=

.PHONY: bench-compare bench-taskiq bench-latency

# taskiq-go vs asynq vs River, alternating A B C x BENCH_RUNS, one table.
bench-compare: build
	cd bench && $(GO) build -o ../$(BIN)/bench-compare ./cmd/compare
	cd bench && ../$(BIN)/bench-compare -taskiq ../$(BIN)/taskiq -tasks $(BENCH_TASKS) \
		-workers $(BENCH_WORKERS) -kickers $(BENCH_KICKERS) -runs $(BENCH_RUNS) $(BENCH_FLAGS)

# taskiq-go alone with the config in BENCH_CONFIG (default taskiq.hcl).
BENCH_CONFIG ?= taskiq.hcl
bench-taskiq: build
	$(BIN)/taskiq bench --config $(BENCH_CONFIG) --tasks 100000 --concurrency $(BENCH_KICKERS) \
		--max-async-tasks $(BENCH_WORKERS) $(BENCH_FLAGS)

# Latency at 1k tasks/s, open loop, with result visibility.
bench-latency: build
	$(BIN)/taskiq bench --config $(BENCH_CONFIG) --rate 1000 --duration 10s --results $(BENCH_FLAGS)
