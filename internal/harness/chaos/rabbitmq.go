package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// The rabbitmq-kill scenario runs the same tasks with the RabbitMQ broker
// (taskiq-rabbitmq on the server of TASKIQ_AMQP_URL, default
// amqp://guest:guest@127.0.0.1:5672/) and the Redis result backend on the
// run's private Redis. Every run has an exchange and queues of its own,
// deleted when it ends. RabbitMQ has no lease: a killed worker's (or
// killed broker plugin's) deliveries return to the queue when its channel
// closes.

const brokerRabbitMQ = "rabbitmq"

func defaultAMQPURL() string {
	if u := os.Getenv("TASKIQ_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// rabbitState is a RabbitMQ run's names and the dead letters drained from
// its dead-letter queue so far.
type rabbitState struct {
	url, queue, exchange string
	conn                 *amqp.Connection
	ch                   *amqp.Channel
	dead                 map[string]string
}

func (r *run) rabbit() bool { return r.sc.broker == brokerRabbitMQ }

// pluginBinaries are the plugin binaries the scenario needs.
func (r *run) pluginBinaries() []string {
	switch {
	case r.rabbit():
		return []string{"taskiq-redis", "taskiq-rabbitmq"}
	case r.sc.broker == brokerNATS:
		return []string{"taskiq-redis", "taskiq-nats"}
	}
	return []string{"taskiq-redis"}
}

func (r *run) setupRabbit() error {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "chaos-" + r.sc.Name + "-" + hex.EncodeToString(b)
	st := &rabbitState{url: defaultAMQPURL(), queue: name, exchange: name + ".x", dead: map[string]string{}}
	conn, err := amqp.Dial(st.url)
	if err != nil {
		return fmt.Errorf("connect to RabbitMQ at TASKIQ_AMQP_URL (the rabbitmq scenarios need it): %w", err)
	}
	st.conn = conn
	if st.ch, err = conn.Channel(); err != nil {
		_ = conn.Close()
		return err
	}
	r.rmq = st
	r.log("RabbitMQ queue %s, exchange %s", st.queue, st.exchange)
	return nil
}

// teardownRabbit deletes the run's exchange and queues.
func (r *run) teardownRabbit() {
	st := r.rmq
	if st == nil {
		return
	}
	if ch, err := st.conn.Channel(); err == nil {
		for _, q := range []string{st.queue, st.queue + ".dead_letter"} {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
		_ = ch.ExchangeDelete(st.exchange, false, false)
	}
	_ = st.conn.Close()
}

// rabbitBrokerBlock is the broker block of taskiq.hcl for a RabbitMQ run.
func (r *run) rabbitBrokerBlock() string {
	return fmt.Sprintf(`broker "default" {
  plugin = "taskiq-rabbitmq"
  config {
    url           = %q
    exchange      = %q
    queue         = %q
    queue_expires = "10m"
  }
}
`, r.rmq.url, r.rmq.exchange, r.rmq.queue)
}

// rabbitQueueEmpty reports whether the run's queue has no ready message.
// (AMQP cannot count unacked deliveries; every task has an outcome when
// this is asked, so an unacked one is a duplicate still running.)
func (r *run) rabbitQueueEmpty() (bool, error) {
	q, err := r.rmq.ch.QueueDeclarePassive(r.rmq.queue, true, false, false, false, nil)
	if err != nil {
		return false, err
	}
	return q.Messages == 0, nil
}

// rabbitDeadLetters drains the dead-letter queue into the run's record:
// task id -> reason.
func (r *run) rabbitDeadLetters() (map[string]string, error) {
	st := r.rmq
	for {
		msg, ok, err := st.ch.Get(st.queue+".dead_letter", true)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		reason, _ := msg.Headers["x-taskiq-dead-letter-reason"].(string)
		if reason == "" {
			reason, _ = msg.Headers["x-first-death-reason"].(string)
		}
		m, err := wire.DecodeMessage(msg.Body)
		if err != nil {
			st.dead["undecodable:"+msg.MessageId] = reason
			continue
		}
		st.dead[m.TaskID] = reason
	}
	out := make(map[string]string, len(st.dead))
	for k, v := range st.dead {
		out[k] = v
	}
	return out, nil
}

// killRabbit SIGKILLs, every KillEvery when every worker child is ready,
// in turn a worker child and the taskiq-rabbitmq broker plugin of a
// worker child.
func (r *run) killRabbit(ctx context.Context) {
	tick := 0
	for waitTick(ctx, r.opts.KillEvery) && r.unfinished() {
		w, ok := r.pickReadyWorker()
		if !ok {
			continue
		}
		kind, pid, what := KillWorker, w.pid, fmt.Sprintf("worker child pid %d", w.pid)
		if tick%2 == 1 {
			ps, err := listProcs()
			if err != nil {
				continue
			}
			bs := childrenOf(ps, w.pid, "taskiq-rabbitmq")
			if len(bs) != 1 {
				continue
			}
			kind, pid, what = KillBroker, bs[0].pid, fmt.Sprintf("taskiq-rabbitmq pid %d of worker %d", bs[0].pid, w.pid)
		}
		tick++
		at := time.Now()
		if err := sigkill(pid); err != nil {
			r.log("kill %s: %v", what, err)
			continue
		}
		r.event(Event{Kind: kind, WorkerPID: w.pid, At: at, Detail: what})
	}
}
