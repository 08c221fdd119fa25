package taskiqnats

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/testcerts"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// privateServer starts nats-server with JetStream and the given config
// body on a free port, for the authentication and TLS tests. It runs with
// the integration tests (TASKIQ_NATS_URL set) and needs the nats-server
// binary; in CI a missing binary fails.
func privateServer(t *testing.T, conf string) int {
	t.Helper()
	natsURL(t)
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
		if _, serr := os.Stat(bin); serr != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("nats-server not found: %v", err)
			}
			t.Skip("nats-server not installed")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	dir := t.TempDir()
	file := filepath.Join(dir, "server.conf")
	body := fmt.Sprintf("listen: 127.0.0.1:%d\njetstream { store_dir: %q }\n%s\n", port, filepath.Join(dir, "js"), conf)
	require.NoError(t, os.WriteFile(file, []byte(body), 0o600))
	cmd := exec.Command(bin, "-c", file)
	cmd.Stdout, cmd.Stderr = nil, nil
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return port
		}
		require.True(t, time.Now().Before(deadline), "nats-server did not listen within 10s")
		time.Sleep(20 * time.Millisecond)
	}
}

// roundTrip kicks one message through a broker configured with cfg and
// receives it.
func roundTrip(t *testing.T, cfg map[string]any) {
	t.Helper()
	prefix := "tq_nats_auth_" + randomHex(4)
	cfg["subject"], cfg["stream"], cfg["durable"], cfg["fetch_wait"] = prefix+"_tasks", prefix, prefix+"_durable", "200ms"
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	br := sdktest.Launch(t, sdk.KindBroker, string(b)).Broker()
	require.NoError(t, br.Kick(ctxT(t), []sdk.Outgoing{testMsg(t, "auth-1")}))
	st, err := br.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	defer st.Close()
	ds, err := st.Recv(ctxT(t), 1)
	require.NoError(t, err)
	require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))
}

// refused checks that a broker configured with cfg fails to start because
// its credentials are refused.
func refused(t *testing.T, cfg map[string]any) {
	t.Helper()
	conn, _, err := decodeBrokerConfig(cfgOf(t, cfg))
	require.NoError(t, err)
	_, _, err = connect(conn, hclog.NewNullLogger())
	require.Error(t, err)
	require.True(t, errors.Is(err, sdk.ErrUnauthenticated), "refused credentials are ErrUnauthenticated, got %v", err)
}

func TestTokenAndUserPassword(t *testing.T) {
	port := privateServer(t, `authorization { users = [ {user: "alice", password: "s3cret"} ] }`)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	roundTrip(t, map[string]any{"servers": []string{url}, "username": "alice", "password": "s3cret"})
	refused(t, map[string]any{"servers": []string{url}, "username": "alice", "password": "wrong"})

	tport := privateServer(t, `authorization { token: "t0ken" }`)
	turl := fmt.Sprintf("nats://127.0.0.1:%d", tport)
	roundTrip(t, map[string]any{"servers": []string{turl}, "token": "t0ken"})
	refused(t, map[string]any{"servers": []string{turl}, "token": "nope"})
}

func TestNKey(t *testing.T) {
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	port := privateServer(t, fmt.Sprintf(`authorization { users = [ {nkey: %q} ] }`, pub))
	file := filepath.Join(t.TempDir(), "user.nk")
	require.NoError(t, os.WriteFile(file, seed, 0o600))
	roundTrip(t, map[string]any{"servers": []string{fmt.Sprintf("nats://127.0.0.1:%d", port)}, "nkey_seed_file": file})
}

// TestTLS: a server with a certificate of a private CA is reached with
// tls_ca_file, and several URLs (the first one dead) fail over.
func TestTLS(t *testing.T) {
	tf := testcerts.New(t)
	port := privateServer(t, fmt.Sprintf("tls { cert_file: %q, key_file: %q }", tf.ServerCert, tf.ServerKey))
	dead := "tls://127.0.0.1:1"
	roundTrip(t, map[string]any{"servers": []string{dead, fmt.Sprintf("tls://127.0.0.1:%d", port)}, "tls_ca_file": tf.CA})
}

// TestMaxPayload: a message larger than the server's max_payload is refused
// with sdk.ErrMessageTooLarge and a message that names both limits.
func TestMaxPayload(t *testing.T) {
	port := privateServer(t, "max_payload: 2048")
	prefix := "tq_nats_auth_" + randomHex(4)
	b, err := json.Marshal(map[string]any{"servers": []string{fmt.Sprintf("nats://127.0.0.1:%d", port)},
		"subject": prefix + "_tasks", "stream": prefix, "durable": prefix + "_durable"})
	require.NoError(t, err)
	br := sdktest.Launch(t, sdk.KindBroker, string(b)).Broker()
	big := testMsg(t, "big-1")
	big.Body = append(big.Body, make([]byte, 4096)...)
	err = br.Kick(ctxT(t), []sdk.Outgoing{big})
	require.ErrorIs(t, err, sdk.ErrMessageTooLarge)
	require.Contains(t, err.Error(), "max_payload (2048 bytes)")
	require.NoError(t, br.Kick(ctxT(t), []sdk.Outgoing{testMsg(t, "small-1")}), "a message within the limit goes through")
}
