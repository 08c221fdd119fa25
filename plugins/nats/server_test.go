package taskiqnats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// natsURL is the server the integration tests use: TASKIQ_NATS_URL. Without
// it they are skipped, except in CI (CI=true), where a missing server is a
// failure.
func natsURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("TASKIQ_NATS_URL")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TASKIQ_NATS_URL is not set; CI runs the NATS tests against a real server")
		}
		t.Skip("TASKIQ_NATS_URL is not set (a NATS server with JetStream, e.g. nats://127.0.0.1:4222)")
	}
	return u
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testNames returns stream, durable and subject names unique to one test,
// and removes the streams (and bucket) they name when the test ends.
func testNames(t *testing.T, url string) (prefix string) {
	t.Helper()
	prefix = "tq_nats_test_" + randomHex(5)
	t.Cleanup(func() { cleanupPrefix(t, url, prefix) })
	return prefix
}

// cleanupPrefix deletes every stream whose name starts with prefix (the
// queue, delay and dead-letter streams, and KV_<prefix> buckets).
func cleanupPrefix(t *testing.T, url, prefix string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var del []string
	for n := range names.Name() {
		if len(n) >= len(prefix) && n[:len(prefix)] == prefix || len(n) >= 3+len(prefix) && n[3:3+len(prefix)] == prefix {
			del = append(del, n)
		}
	}
	for _, n := range del {
		if err := js.DeleteStream(ctx, n); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Logf("cleanup of stream %s: %v", n, err)
		}
	}
}

// brokerConfig returns the JSON config of a broker on the test's own names.
func testBrokerConfig(t *testing.T, url, prefix string, extra map[string]any) string {
	t.Helper()
	kv := map[string]any{
		"servers":    []string{url},
		"subject":    prefix + "_tasks",
		"stream":     prefix,
		"durable":    prefix + "_durable",
		"ack_wait":   "2500ms",
		"fetch_wait": "500ms",
	}
	for k, v := range extra {
		kv[k] = v
	}
	b, err := json.Marshal(kv)
	require.NoError(t, err)
	return string(b)
}
