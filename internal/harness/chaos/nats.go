package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Broker plugins a scenario can run on.
const (
	brokerRedis = "" // taskiq-redis in stream mode, the default
	brokerNATS  = "nats"
)

// natsServer is a private nats-server of one run: JetStream with file
// storage in the run's directory, on a free port, so that a restart keeps
// every stored message and the machine's shared NATS is never touched.
type natsServer struct {
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startNATS(ctx context.Context, dir string) (*natsServer, error) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nats-server"); serr != nil {
			return nil, fmt.Errorf("nats-server not found in PATH; install it (apt-get install nats-server): %w", err)
		}
		bin = "/usr/sbin/nats-server"
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	n := &natsServer{bin: bin, port: port, dir: dir}
	return n, n.start(ctx)
}

// URL is the server's nats:// address.
func (n *natsServer) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// start runs nats-server and waits until its JetStream answers.
func (n *natsServer) start(ctx context.Context) error {
	cmd := exec.Command(n.bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(n.port),
		"-sd", filepath.Join(n.dir, "jetstream"), "-l", filepath.Join(n.dir, "nats.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nats-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	n.cmd, n.done = cmd, done
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := n.ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("nats-server on port %d exited at start; see %s", n.port, filepath.Join(n.dir, "nats.log"))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = n.kill()
			return fmt.Errorf("nats-server on port %d: JetStream not answering within 15s (last error: %v); see %s", n.port, err, filepath.Join(n.dir, "nats.log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *natsServer) ping(ctx context.Context) error {
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(n.port), 200*time.Millisecond); err != nil {
		return err
	} else {
		c.Close()
	}
	nc, err := nats.Connect(n.URL(), nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = js.AccountInfo(cctx)
	return err
}

// kill ends the server with SIGKILL, as a crash would.
func (n *natsServer) kill() error { return n.signal(syscall.SIGKILL) }

// term asks the server to shut down cleanly.
func (n *natsServer) term() error { return n.signal(syscall.SIGTERM) }

func (n *natsServer) signal(sig syscall.Signal) error {
	if n.cmd == nil {
		return nil
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
		n.cmd = nil
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("nats-server did not exit within 10s")
	}
}

func (n *natsServer) stop() {
	if n.cmd != nil {
		_ = n.kill()
	}
}

// natsBrokerBlock is the broker block of a NATS scenario: the chaos queue
// on the private server, ack_wait as the lease.
func natsBrokerBlock(url, lease string) string {
	return fmt.Sprintf(`broker "default" {
  plugin = "taskiq-nats"
  config {
    servers     = [%q]
    subject     = "chaos"
    stream      = "chaos"
    durable     = "chaos"
    ack_wait    = %q
    max_deliver = 10
    fetch_wait  = "500ms"
  }
}
`, url, lease)
}

// natsConn is a JetStream client of the run's server, for the accounting.
func (r *run) natsJS() (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(r.nats.URL(), nats.Timeout(time.Second), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// natsQueueEmpty reports whether nothing is left that could run again: the
// durable consumers of the queue and of the delay stream have no message
// pending delivery and none delivered but unacked. (Stream message counts
// are not used: after an unclean restart, nats-server 2.9 may keep a few
// messages that its consumer had acked in a work-queue stream, below the
// consumer's ack floor, where they are never delivered again.)
func (r *run) natsQueueEmpty(ctx context.Context) bool {
	nc, js, err := r.natsJS()
	if err != nil {
		return false
	}
	defer nc.Close()
	for _, sc := range [][2]string{{"chaos", "chaos"}, {"chaos_delayed", "chaos_delayed"}} {
		c, err := js.Consumer(ctx, sc[0], sc[1])
		if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		if err != nil {
			return false
		}
		if info.NumPending > 0 || info.NumAckPending > 0 {
			r.log("consumer %s: %d message(s) to deliver, %d delivered and not acked", sc[1], info.NumPending, info.NumAckPending)
			return false
		}
	}
	return true
}

// natsDeadLetters reads the NATS dead-letter stream: task id -> reason.
func (r *run) natsDeadLetters(ctx context.Context) (map[string]string, error) {
	nc, js, err := r.natsJS()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	out := map[string]string{}
	s, err := js.Stream(ctx, "chaos_dead")
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		reason := m.Header.Get("Taskiq-Reason")
		msg, err := wire.DecodeMessage(m.Data)
		if err != nil {
			out["undecodable:"+strconv.FormatUint(seq, 10)] = reason
			continue
		}
		out[msg.TaskID] = reason
	}
	return out, nil
}
