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
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a private redis-server of one run: its own port and
// directory, AOF on with appendfsync always, so that a restart keeps every
// acknowledged write and the shared Redis of the machine is never touched.
type redisServer struct {
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startRedis(ctx context.Context, dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found in PATH; install it (apt-get install redis-server): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &redisServer{bin: bin, port: port, dir: dir}
	return r, r.start(ctx)
}

// URL is the server's redis:// address.
func (r *redisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// Addr is host:port.
func (r *redisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// start runs redis-server on r's port and directory and waits until it
// answers PING and has loaded its AOF.
func (r *redisServer) start(ctx context.Context) error {
	cmd := exec.Command(r.bin,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--appendonly", "yes", "--appendfsync", "always",
		"--dir", r.dir, "--save", "",
		"--logfile", filepath.Join(r.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited at start; see %s", r.port, filepath.Join(r.dir, "redis.log"))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = r.kill()
			return fmt.Errorf("redis-server on port %d did not answer PING within 15s (last error: %v); see %s", r.port, err, filepath.Join(r.dir, "redis.log"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL, as a crash would.
func (r *redisServer) kill() error {
	if r.cmd == nil {
		return nil
	}
	_ = r.cmd.Process.Kill()
	return r.wait()
}

// shutdownNoSave asks the server to exit without an RDB snapshot; with AOF
// on, it still flushes the AOF.
func (r *redisServer) shutdownNoSave(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer c.Close()
	// SHUTDOWN answers nothing when it works: the connection just closes.
	_ = c.Do(ctx, "SHUTDOWN", "NOSAVE").Err()
	return r.wait()
}

func (r *redisServer) wait() error {
	select {
	case <-r.done:
		r.cmd = nil
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("redis-server did not exit within 10s")
	}
}

// stop ends the server for good.
func (r *redisServer) stop() {
	if r.cmd != nil {
		_ = r.kill()
	}
}
