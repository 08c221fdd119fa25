GO ?= go
BIN := bin
PLUGINS := taskiq-inmemory taskiq-redis taskiq-retry-middleware taskiq-nats taskiq-rabbitmq
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

# Binaries are linked statically (no cgo): a plugin process then maps no libc
# and no dynamic loader, about 1.5 MB less resident set per process
# (BENCHMARKS.md, "Issue 19 ... idle footprint, round 2"). go test -race keeps cgo.
GOBUILD := CGO_ENABLED=0 $(GO) build

.PHONY: all build plugins demo demo-worker test lint cover proto integration bench bench-middleware clean

all: build

build: $(BIN)/taskiq plugins

$(BIN)/taskiq: FORCE
	$(GOBUILD) -o $@ ./cmd/taskiq

plugins: $(addprefix $(BIN)/,$(PLUGINS))

$(BIN)/taskiq-inmemory: FORCE
	$(GOBUILD) -o $@ ./plugins/inmemory/cmd/taskiq-inmemory

$(BIN)/taskiq-redis: FORCE
	$(GOBUILD) -o $@ ./plugins/redis/cmd/taskiq-redis

$(BIN)/taskiq-nats: FORCE
	$(GOBUILD) -o $@ ./plugins/nats/cmd/taskiq-nats

$(BIN)/taskiq-rabbitmq: FORCE
	$(GOBUILD) -o $@ ./plugins/rabbitmq/cmd/taskiq-rabbitmq

$(BIN)/taskiq-retry-middleware: FORCE
	$(GOBUILD) -o $@ ./plugins/retry-middleware/cmd/taskiq-retry-middleware

demo: build
	$(GO) run ./examples/quickstart

$(BIN)/example-tasks: FORCE
	$(GOBUILD) -o $@ ./examples/tasks-module

# The task-module example: two supervised workers against Redis
# (127.0.0.1:6379, or TASKIQ_REDIS_URL). Kick from another shell:
#   bin/taskiq kick --config examples/tasks-module/taskiq.hcl example:add 1 2 --wait
demo-worker: build $(BIN)/example-tasks
	$(BIN)/taskiq worker --config examples/tasks-module/taskiq.hcl $(BIN)/example-tasks

# All tests; unit tests need no server. Tests against real services run when
# their env var is set (TASKIQ_REDIS_URL, TASKIQ_NATS_URL, TASKIQ_AMQP_URL, see .ci/run).
test:
	$(GO) test -race -count=1 -timeout 15m ./...

# Per-package statement coverage of plugin/sdk and core, counting the code
# that runs in the plugin processes the tests start: go test gives a test
# binary built with -cover a GOCOVERDIR, the SDK passes it on to the plugins
# it launches, and a test binary re-executed as a plugin adds its counters to
# the package's figure when it exits.
cover:
	$(GO) test -count=1 -cover ./plugin/sdk/ ./core/

# go vet and staticcheck, at a pinned version (installed with go install).
STATICCHECK_VERSION := v0.8.2
lint:
	$(GO) vet ./...
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	staticcheck ./...

# The tests that use a real service, against the services on this machine.
# The dashboard's browser test (core/dashboard) drives /usr/bin/chromium
# headless (apt-get install -y chromium); in CI a missing chromium fails it.
# Packages run one at a time: they share the Redis database they flush.
# TASKIQ_REDIS_TOPOLOGY=1 adds Sentinel, Cluster, TLS and ACL runs against
# redis-server processes the tests start themselves on free ports.
integration:
	TASKIQ_REDIS_URL=$${TASKIQ_REDIS_URL:-redis://127.0.0.1:6379/15} \
	TASKIQ_REDIS_TOPOLOGY=$${TASKIQ_REDIS_TOPOLOGY:-1} \
		$(GO) test -race -count=1 -p 1 -timeout 30m ./plugins/redis/... ./cmd/taskiq/ ./core/dashboard/
	TASKIQ_NATS_URL=$${TASKIQ_NATS_URL:-nats://127.0.0.1:4222} \
		$(GO) test -race -count=1 -timeout 10m ./plugins/nats/...
	TASKIQ_AMQP_URL=$${TASKIQ_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/} \
		$(GO) test -race -count=1 -p 1 -timeout 10m ./plugins/rabbitmq/...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 200000x ./core/... ./plugin/sdk/ ./plugins/...

# What a middleware plugin's hooks cost end to end (docs/plugins.md, "Hooks
# on the hot path"): the in-memory plugin without (A) and with (B) a
# middleware implementing pre_send, pre_execute and post_execute, alternating
# A/B for 3 rounds in one run; take the medians.
bench-middleware: build
	$(GOBUILD) -o $(BIN)/taskiq-bench-middleware ./internal/harness/bench/middleware
	@for round in 1 2 3; do for c in inmemory inmemory-middleware; do \
		printf '%s %-20s ' $$round $$c; \
		$(BIN)/taskiq bench -c internal/harness/bench/configs/$$c.hcl --tasks 30000 --concurrency 64 | grep -E 'end to end|total cpu' | tr -s ' \n' ' '; echo; \
	done; done

proto:
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler"; exit 1; }
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	protoc --proto_path=plugin/sdk/proto/v1 \
		--go_out=plugin/sdk/proto/v1 --go_opt=paths=source_relative \
		--go-grpc_out=plugin/sdk/proto/v1 --go-grpc_opt=paths=source_relative \
		plugin/sdk/proto/v1/plugin.proto plugin/sdk/proto/v1/inspect.proto plugin/sdk/proto/v1/schedule.proto

clean:
	rm -rf $(BIN)

FORCE:

# Benchmark targets live with the benchmark harness.
-include bench/bench.mk

# Chaos runs live with the chaos harness.
-include internal/harness/chaos/chaos.mk
