//go:build linux

package taskiqredis

// Helpers of the topology tests (topology_test.go): real redis-server
// processes of the test's own (standalone, TLS, ACL, Sentinel, Cluster) on
// free ports of 127.0.0.1, in temporary directories, killed at cleanup.
// Linux only: the servers get SIGKILL when the test binary dies
// (Pdeathsig), so a timed-out `go test` leaves none behind.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/testcerts"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// envTopology enables the topology tests: they start several real
// redis-server processes and take tens of seconds.
const envTopology = "TASKIQ_REDIS_TOPOLOGY"

// requireTopology skips unless TASKIQ_REDIS_TOPOLOGY=1. When it is set,
// redis-server and redis-cli must exist: whoever set it asked for these
// tests, so a missing binary is a failure, not a skip.
func requireTopology(t *testing.T) {
	t.Helper()
	if os.Getenv(envTopology) != "1" {
		t.Skip("set " + envTopology + "=1 to start real Sentinel/Cluster/TLS/ACL redis-servers (needs redis-server and redis-cli >= 7.0 on PATH)")
	}
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s=1 but %s is not on PATH; install Redis >= 7.0 (e.g. apt-get install redis-server)", envTopology, bin)
		}
	}
}

// topoServer is one redis-server (or sentinel) process.
type topoServer struct {
	name string
	port int
	dir  string
	log  string // the server's log file
	cmd  *exec.Cmd
	done chan struct{} // closed when the process was waited for
}

func (s *topoServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// logTail returns the end of the server's log, for failure messages.
func (s *topoServer) logTail() string {
	b, _ := os.ReadFile(s.log)
	return tail(string(b), 3000)
}

// kill stops the server at once (SIGKILL: a crash, not a shutdown) and
// waits until it is gone.
func (s *topoServer) kill(t testing.TB) {
	t.Helper()
	_ = s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Errorf("redis-server %s (pid %d) did not exit within 10s of SIGKILL", s.name, s.cmd.Process.Pid)
	}
}

// serverConf is what startTopoServer writes into the server's config file
// besides port, bind, dir and logfile.
type serverConf struct {
	lines    []string // extra config lines
	sentinel bool     // run as a sentinel (redis-server <conf> --sentinel)
	tls      bool     // the port is a TLS port (tls-port), the plain port is off
}

// startTopoServer starts a server on a free port and waits until it
// accepts TCP connections. A port taken by someone else between choosing
// and binding makes the server exit; it is retried on another port.
func startTopoServer(t *testing.T, name string, conf serverConf) *topoServer {
	t.Helper()
	var last string
	for try := 0; try < 3; try++ {
		s, ok, why := tryStartTopoServer(t, name, conf)
		if ok {
			return s
		}
		last = why
	}
	t.Fatalf("redis-server %s did not start in 3 tries; last log:\n%s", name, last)
	return nil
}

func tryStartTopoServer(t *testing.T, name string, conf serverConf) (*topoServer, bool, string) {
	dir := t.TempDir()
	s := &topoServer{name: name, port: freePort(t), dir: dir, log: filepath.Join(dir, "redis.log"),
		done: make(chan struct{})}
	lines := []string{"bind 127.0.0.1", "dir " + dir, "logfile " + s.log, "daemonize no"}
	if conf.tls {
		lines = append(lines, "port 0", "tls-port "+strconv.Itoa(s.port))
	} else {
		lines = append(lines, "port "+strconv.Itoa(s.port))
	}
	if !conf.sentinel {
		lines = append(lines, `save ""`, "appendonly no")
	}
	lines = append(lines, conf.lines...)
	path := filepath.Join(dir, name+".conf")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	args := []string{path}
	if conf.sentinel {
		args = append(args, "--sentinel")
	}
	s.cmd = exec.Command("redis-server", args...)
	s.cmd.Dir = dir
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &logBuffer{}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	require.NoError(t, s.cmd.Start())
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.kill(t)
		if t.Failed() {
			t.Logf("log of redis-server %s (%s):\n%s%s", name, s.addr(), out.String(), s.logTail())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return nil, false, out.String() + s.logTail()
		default:
		}
		c, err := net.DialTimeout("tcp", s.addr(), 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return s, true, ""
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("redis-server %s did not listen on %s within 15s:\n%s%s", name, s.addr(), out.String(), s.logTail())
	return nil, false, ""
}

// adminClient is a plain go-redis client of the test to one server, closed
// at cleanup. It never retries, so a probe of a dead server fails fast.
func adminClient(t testing.TB, addr string, mod func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second}
	if mod != nil {
		mod(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// infoField returns one "field:value" of an INFO section ("" if absent).
func infoField(ctx context.Context, c *redis.Client, section, field string) string {
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	return ""
}

// rawConfig renders a plugin configuration for newBroker/newResultBackend.
func rawConfig(t testing.TB, kv map[string]any) sdk.Config {
	raw, err := json.Marshal(kv)
	require.NoError(t, err)
	return sdk.Config{Name: "topology", Raw: raw}
}

// merged returns a copy of base with extra's entries added.
func merged(base map[string]any, extra map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// --- Sentinel ---

// sentinelSetup is a master, one replica and one sentinel watching them
// under the name "mymaster" with quorum 1.
type sentinelSetup struct {
	master, replica, sentinel *topoServer
	sentinelClient            *redis.SentinelClient
}

const sentinelMasterName = "mymaster"

func startSentinel(t *testing.T) *sentinelSetup {
	t.Helper()
	ctx := ctxT(t)
	st := &sentinelSetup{}
	st.master = startTopoServer(t, "master", serverConf{})
	st.replica = startTopoServer(t, "replica", serverConf{lines: []string{"replicaof 127.0.0.1 " + strconv.Itoa(st.master.port)}})
	rc := adminClient(t, st.replica.addr(), nil)
	require.Eventually(t, func() bool {
		return infoField(ctx, rc, "replication", "master_link_status") == "up"
	}, 15*time.Second, 20*time.Millisecond, "the replica did not sync with the master:\n%s", st.replica.logTail())
	st.sentinel = startTopoServer(t, "sentinel", serverConf{sentinel: true, lines: []string{
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1", sentinelMasterName, st.master.port),
		"sentinel down-after-milliseconds " + sentinelMasterName + " 1000",
		"sentinel failover-timeout " + sentinelMasterName + " 10000",
		"sentinel parallel-syncs " + sentinelMasterName + " 1",
	}})
	st.sentinelClient = redis.NewSentinelClient(&redis.Options{Addr: st.sentinel.addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = st.sentinelClient.Close() })
	// A failover needs the sentinel to know a healthy replica.
	require.Eventually(t, func() bool {
		reps, err := st.sentinelClient.Replicas(ctx, sentinelMasterName).Result()
		if err != nil || len(reps) != 1 {
			return false
		}
		return reps[0]["flags"] == "slave" && reps[0]["master-link-status"] == "ok"
	}, 20*time.Second, 50*time.Millisecond, "the sentinel did not discover the replica:\n%s", st.sentinel.logTail())
	return st
}

// masterAddr is where the sentinel says the master is.
func (st *sentinelSetup) masterAddr(ctx context.Context) string {
	a, err := st.sentinelClient.GetMasterAddrByName(ctx, sentinelMasterName).Result()
	if err != nil || len(a) != 2 {
		return ""
	}
	return net.JoinHostPort(a[0], a[1])
}

// waitReplicated waits until the replica has applied everything the master
// wrote, so a failover cannot lose what the test wrote before it.
func (st *sentinelSetup) waitReplicated(t *testing.T) {
	t.Helper()
	ctx := ctxT(t)
	mc := adminClient(t, st.master.addr(), nil)
	rc := adminClient(t, st.replica.addr(), nil)
	require.Eventually(t, func() bool {
		m := infoField(ctx, mc, "replication", "master_repl_offset")
		r := infoField(ctx, rc, "replication", "slave_repl_offset")
		return m != "" && m == r
	}, 15*time.Second, 10*time.Millisecond, "the replica did not catch up with the master")
}

// --- Cluster ---

// startCluster starts n masters with cluster-enabled yes, joins them with
// redis-cli --cluster create (no replicas) and waits until every node says
// cluster_state:ok. With tf the nodes speak only TLS (clients and the
// cluster bus).
func startCluster(t *testing.T, n int, tf *testcerts.Files) []*topoServer {
	t.Helper()
	nodes := make([]*topoServer, n)
	addrs := make([]string, n)
	for i := range nodes {
		lines := []string{"cluster-enabled yes", "cluster-config-file nodes.conf",
			"cluster-node-timeout 3000", "cluster-port " + strconv.Itoa(freePort(t))}
		if tf != nil {
			lines = append(lines, serverLines(tf, false)...)
			lines = append(lines, "tls-cluster yes", "tls-replication yes")
		}
		nodes[i] = startTopoServer(t, "node"+strconv.Itoa(i+1), serverConf{lines: lines, tls: tf != nil})
		addrs[i] = nodes[i].addr()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"--cluster", "create"}
	args = append(args, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if tf != nil {
		args = append([]string{"--tls", "--cacert", tf.CA}, args...)
	}
	out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
	require.NoError(t, err, "redis-cli --cluster create:\n%s", out)
	for _, node := range nodes {
		c := adminClient(t, node.addr(), func(o *redis.Options) {
			if tf != nil {
				o.TLSConfig = tf.ClientTLS(t)
			}
		})
		require.Eventually(t, func() bool {
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) && meshed(ctx, c, n)
		}, 30*time.Second, 50*time.Millisecond, "cluster node %s never reached cluster_state:ok with a link to every node", node.addr())
	}
	return nodes
}

// meshed reports whether the node has a connected cluster-bus link to each
// of the n nodes. cluster_state:ok only says that the slots are covered; a
// PUBLISH reaches subscribers on other nodes over these links, so a test of
// result notifications must not start before they are all up.
func meshed(ctx context.Context, c *redis.Client, n int) bool {
	nodes, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return false
	}
	connected := 0
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		if f := strings.Fields(line); len(f) >= 8 && f[7] == "connected" {
			connected++
		}
	}
	return connected == n
}
