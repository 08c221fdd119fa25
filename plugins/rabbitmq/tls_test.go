package taskiqrabbitmq

import (
	"crypto/tls"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/testcerts"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// tlsFront serves TLS on a free port with the server certificate of tf
// (requiring a client certificate signed by its CA when verifyClients) and
// forwards each connection in the clear to the RabbitMQ server of
// TASKIQ_AMQP_URL: a TLS listener in front of the real server. It returns
// the amqps:// URL of the front.
func tlsFront(t *testing.T, tf *testcerts.Files, verifyClients bool) string {
	t.Helper()
	u, err := url.Parse(amqpURL(t))
	require.NoError(t, err)
	upstream := u.Host
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tf.ServerTLS(t, verifyClients))
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			open = append(open, c, up)
			mu.Unlock()
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				_ = dst.Close()
				_ = src.Close()
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	u.Scheme, u.Host = "amqps", ln.Addr().String()
	return u.String()
}

// TestTLS: through a TLS front that verifies clients, the plugin (a real
// process) kicks, consumes and acks with tls_ca_file and a client
// certificate; without the CA or without the certificate the start fails
// with ErrUnavailable and a message that points at the TLS attributes.
func TestTLS(t *testing.T) {
	tf := testcerts.New(t)
	front := tlsFront(t, tf, true)
	n := newNames(t)
	cfg := n.config(t, map[string]any{"url": front, "tls_ca_file": tf.CA,
		"tls_cert_file": tf.ClientCert, "tls_key_file": tf.ClientKey})
	br := sdktest.Launch(t, sdk.KindBroker, jsonOf(t, cfg)).Broker()
	st, err := br.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, br.Kick(ctxT(t), []sdk.Outgoing{{TaskID: "tls-1", TaskName: "x", Body: []byte(`{"task_id":"tls-1"}`)}}))
	ds, err := st.Recv(ctxT(t), 1)
	require.NoError(t, err)
	require.Equal(t, `{"task_id":"tls-1"}`, string(ds[0].Body))
	require.NoError(t, st.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))

	for name, c := range map[string]struct {
		cfg  map[string]any
		hint string
	}{
		"UnknownCA":         {map[string]any{"url": front, "tls_cert_file": tf.ClientCert, "tls_key_file": tf.ClientKey}, "set tls_ca_file"},
		"NoClientCert":      {map[string]any{"url": front, "tls_ca_file": tf.CA}, "set tls_cert_file and tls_key_file"},
		"PlainURLOnTLSPort": {map[string]any{"url": "amqp" + front[len("amqps"):]}, "write the url as amqps://"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newTestBroker(t, newNames(t).config(t, c.cfg))
			require.ErrorIs(t, err, sdk.ErrUnavailable)
			require.ErrorContains(t, err, c.hint)
			t.Logf("%s: %v", name, err)
		})
	}
}
