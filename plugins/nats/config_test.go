package taskiqnats

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

func cfgOf(t *testing.T, kv map[string]any) sdk.Config {
	b, err := json.Marshal(kv)
	require.NoError(t, err)
	return sdk.Config{Raw: b}
}

func attrsOf(err error) map[string]string {
	out := map[string]string{}
	for _, ce := range sdk.ConfigErrors(err) {
		out[ce.Attribute] = ce.Message
	}
	return out
}

func TestBrokerDefaultsMatchTaskiqNats(t *testing.T) {
	conn, o, err := decodeBrokerConfig(cfgOf(t, nil))
	require.NoError(t, err)
	require.Equal(t, []string{"nats://127.0.0.1:4222"}, conn.servers)
	require.Equal(t, "taskiq_tasks", o.subject)
	require.Equal(t, "taskiq_jetstream", o.stream)
	require.Equal(t, "taskiq_durable", o.durable)
	require.Equal(t, "taskiq_jetstream_dead", o.deadStream)
	require.Equal(t, "taskiq_jetstream_delayed", o.delayStream)
	require.True(t, o.workQueue, "the stream does not grow forever")
	require.Equal(t, 30*time.Second, o.ackWait, "the server's (and taskiq-nats') AckWait")
	require.Equal(t, 10, o.maxDeliver)
	require.True(t, o.dedup)
}

func TestBrokerConfigErrorsNameTheAttribute(t *testing.T) {
	_, _, err := decodeBrokerConfig(cfgOf(t, map[string]any{
		"subject": "bad subject", "stream": "a.b", "retention": "forever", "ack_wait": "soon",
		"max_deliver": 1.5, "servers": []string{"http://x:1"}, "storage": "disk",
	}))
	attrs := attrsOf(err)
	for _, a := range []string{"subject", "stream", "retention", "ack_wait", "max_deliver", "servers", "storage"} {
		require.Contains(t, attrs, a, "errors: %v", attrs)
	}

	// Types and bounds are the schema's: the host checks them in taskiq.hcl
	// before the plugin runs, and decoding checks them again.
	_, _, err = decodeBrokerConfig(cfgOf(t, map[string]any{
		"ack_wait": "soon", "max_deliver": 1.5, "fetch_wait": "1ms", "connect_timeout": "0s",
	}))
	require.Equal(t, map[string]string{
		"ack_wait":        `"soon" is not a duration; write a number with a unit, such as "30s", "5m" or "1h30m"`,
		"max_deliver":     "must be a whole number, got 1.5",
		"fetch_wait":      "must be at least 10ms, got 1ms",
		"connect_timeout": "must be at least 1ms, got 0s",
	}, attrsOf(err))
	_, _, err = decodeResultConfig(cfgOf(t, map[string]any{"poll_fallback": "0s"}))
	require.Equal(t, map[string]string{"poll_fallback": "must be at least 1ms, got 0s"}, attrsOf(err))
}

func TestAuthOptions(t *testing.T) {
	// One method at a time.
	_, errs := validateConn(connConfig{Token: "t", Username: "u", Password: "p"})
	require.Contains(t, attrsOf(errors.Join(errs...)), "token")
	_, errs = validateConn(connConfig{Password: "p"})
	require.Contains(t, attrsOf(errors.Join(errs...)), "username")
	_, errs = validateConn(connConfig{CredsFile: "/nonexistent/x.creds"})
	require.Contains(t, attrsOf(errors.Join(errs...)), "creds_file")

	// An nkey seed, inline or from a file.
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	_, errs = validateConn(connConfig{NKeySeed: string(seed)})
	require.Empty(t, errs)
	file := filepath.Join(t.TempDir(), "user.nk")
	require.NoError(t, os.WriteFile(file, seed, 0o600))
	_, errs = validateConn(connConfig{NKeySeedFile: file})
	require.Empty(t, errs)
	_, errs = validateConn(connConfig{NKeySeed: "not a seed"})
	require.Contains(t, attrsOf(errors.Join(errs...)), "nkey_seed")

	// TLS files are read at configuration time.
	_, errs = validateConn(connConfig{TLSFiles: sdk.TLSFiles{CAFile: "/nonexistent/ca.pem"}})
	require.Contains(t, attrsOf(errors.Join(errs...)), "tls_ca_file")
	_, errs = validateConn(connConfig{TLSFiles: sdk.TLSFiles{CertFile: "c.pem"}})
	require.Contains(t, attrsOf(errors.Join(errs...)), "tls_key_file")

	// Several servers; credentials in a URL never reach an error message.
	_, errs = validateConn(connConfig{Servers: []string{"nats://a:4222", "tls://b:4222"}})
	require.Empty(t, errs)
	_, errs = validateConn(connConfig{Servers: []string{"ftp://user:secret@a:4222"}})
	require.NotEmpty(t, errs)
	require.NotContains(t, errors.Join(errs...).Error(), "secret")
}

func TestSensitiveAttributes(t *testing.T) {
	s := brokerSchema()
	for _, name := range []string{"token", "password", "nkey_seed", "creds_file"} {
		a, ok := s.Attribute(name)
		require.True(t, ok, name)
		require.True(t, a.Sensitive, "%s must never be logged", name)
	}
}

func TestResultConfig(t *testing.T) {
	_, o, err := decodeResultConfig(cfgOf(t, nil))
	require.NoError(t, err)
	require.Equal(t, "taskiq_results", o.bucket)
	require.True(t, o.keepResults)
	_, _, err = decodeResultConfig(cfgOf(t, map[string]any{"bucket": "a.b"}))
	require.Contains(t, attrsOf(err), "bucket")
	require.Error(t, checkKey("has space"))
	require.NoError(t, checkKey("5f1c0e7d9a2b4c6e8f0a1b2c3d4e5f60"))
}

func TestResultSerializer(t *testing.T) {
	_, o, err := decodeResultConfig(cfgOf(t, nil))
	require.NoError(t, err)
	require.Equal(t, serializerJSON, o.serializer)
	_, _, err = decodeResultConfig(cfgOf(t, map[string]any{"serializer": "yaml"}))
	require.Contains(t, attrsOf(err), "serializer")

	body := []byte(`{"is_err":false,"return_value":[1,"two",null],"execution_time":0.5}`)
	pickled := &resultBackend{opts: resultOptions{serializer: serializerPickle}}
	stored, err := pickled.encode(body)
	require.NoError(t, err)
	require.Equal(t, byte(0x80), stored[0], "stored as a pickle")
	back, err := pickled.decode("k", stored)
	require.NoError(t, err)
	require.JSONEq(t, string(body), string(back))
	back, err = pickled.decode("k", body)
	require.NoError(t, err, "JSON is still read with pickle")
	require.Equal(t, body, back)

	plain := &resultBackend{opts: resultOptions{serializer: serializerJSON}}
	same, err := plain.encode(body)
	require.NoError(t, err)
	require.Equal(t, body, same)
	_, err = plain.decode("k", stored)
	require.ErrorIs(t, err, wire.ErrMalformed, "a pickle is refused without serializer = pickle")
	require.Contains(t, err.Error(), `serializer = "pickle"`)
}
