# Chaos runs, included by the root Makefile (-include internal/harness/chaos/chaos.mk).
# Each scenario starts its own redis-server on a free port (AOF, appendfsync
# always) and its own `taskiq worker`; the shared Redis on 6379 is never
# touched; the nats scenario also starts its own `nats-server -js` (file
# storage). Needs redis-server and nats-server; rabbitmq-kill also needs
# RabbitMQ (TASKIQ_AMQP_URL, default amqp://guest:guest@127.0.0.1:5672/).
# See docs/chaos.md.

CHAOS_FLAGS ?=

.PHONY: chaos chaos-ci chaos-bins

# The harness and the chaos task module.
chaos-bins: build
	$(GO) build -o $(BIN)/chaos-module ./internal/harness/chaos/tasks-module
	$(GO) build -o $(BIN)/chaos ./internal/harness/chaos/cmd/chaos

# Full size: 20k tasks per scenario.
chaos: chaos-bins
	$(BIN)/chaos -bin $(BIN) -tasks 20000 -task-ms 100 -bad 30 \
		-deadline 6m -total-deadline 20m -scheduler-duration 60s $(CHAOS_FLAGS)

# Bounded for CI: 3k tasks per scenario (redis-oom holds Redis full for 14s
# and takes about 25s; nats and rabbitmq-kill about 20s each), then
# scheduler-replicas and scheduler-lease (20s of kills each, about 27s and
# 45s in all); hard stop at 330s.
chaos-ci: chaos-bins
	$(BIN)/chaos -bin $(BIN) -tasks 3000 -task-ms 100 -bad 10 \
		-deadline 60s -total-deadline 330s -scheduler-duration 20s $(CHAOS_FLAGS)
