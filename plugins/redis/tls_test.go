package taskiqredis

// TLS: test certificates (used by the topology tests against real servers)
// and the tls_* attributes, checked without a server.

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/testcerts"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// --- TLS ---

// serverLines configures a TLS redis-server with tf; authClients makes it
// require a client certificate signed by the CA.
func serverLines(tf *testcerts.Files, authClients bool) []string {
	auth := "no"
	if authClients {
		auth = "yes"
	}
	return []string{"tls-cert-file " + tf.ServerCert, "tls-key-file " + tf.ServerKey,
		"tls-ca-cert-file " + tf.CA, "tls-auth-clients " + auth}
}

// TestTLSAttributes checks the tls_* attributes without a server: they are
// in both schemas, are refused with a plain redis:// URL (which would send
// everything unencrypted), report unreadable files against their
// attribute, and end up in the client's TLS configuration.
func TestTLSAttributes(t *testing.T) {
	t.Parallel()
	tf := testcerts.New(t)
	for _, schema := range []sdk.Schema{brokerSchema(), resultSchema()} {
		names := map[string]sdk.Attribute{}
		for _, a := range schema.Attributes {
			names[a.Name] = a
		}
		for _, n := range []string{"tls_ca_file", "tls_cert_file", "tls_key_file", "tls_insecure_skip_verify"} {
			require.Contains(t, names, n)
			require.NotEmpty(t, names[n].Description, n)
		}
		require.Equal(t, sdk.TypeBool, names["tls_insecure_skip_verify"].Type)
	}
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))

	bad := []struct {
		name string
		kv   map[string]any
		attr string
		says string
	}{
		{"CAWithPlainURL", map[string]any{"url": "redis://h:6379/0", "tls_ca_file": tf.CA}, "tls_ca_file", "rediss://"},
		{"SkipVerifyWithPlainURL", map[string]any{"url": "redis://h:6379/0", "tls_insecure_skip_verify": true}, "tls_insecure_skip_verify", "rediss://"},
		{"CertWithoutKey", map[string]any{"url": "rediss://h:6379/0", "tls_cert_file": tf.ClientCert}, "tls_key_file", "private key"},
		{"KeyWithoutCert", map[string]any{"url": "rediss://h:6379/0", "tls_key_file": tf.ClientKey}, "tls_cert_file", "certificate"},
		{"MissingCAFile", map[string]any{"url": "rediss://h:6379/0", "tls_ca_file": "/nonexistent/ca.pem"}, "tls_ca_file", "/nonexistent/ca.pem"},
		{"CAFileNotPEM", map[string]any{"url": "rediss://h:6379/0", "tls_ca_file": notPEM}, "tls_ca_file", "no PEM certificate"},
		{"KeyNotMatching", map[string]any{"url": "rediss://h:6379/0", "tls_cert_file": tf.ClientCert, "tls_key_file": tf.ServerKey}, "tls_cert_file", "cannot load"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, decode := range []func(sdk.Config) error{
				func(cfg sdk.Config) error { _, _, err := decodeBrokerConfig(cfg); return err },
				func(cfg sdk.Config) error { _, _, err := decodeResultConfig(cfg); return err },
			} {
				err := decode(rawTestConfig(t, c.kv))
				var ce *sdk.ConfigError
				require.True(t, errors.As(err, &ce), "want a ConfigError, got %v", err)
				require.Equal(t, c.attr, ce.Attribute, "%v", err)
				require.ErrorContains(t, err, c.says)
			}
		})
	}

	t.Run("Applied", func(t *testing.T) {
		t.Parallel()
		conn, _, err := decodeBrokerConfig(rawTestConfig(t, map[string]any{"url": "rediss://redis.example:6380/0",
			"tls_ca_file": tf.CA, "tls_cert_file": tf.ClientCert, "tls_key_file": tf.ClientKey}))
		require.NoError(t, err)
		require.NotNil(t, conn.tls)
		require.Equal(t, "redis.example", conn.tls.ServerName)
		require.NotNil(t, conn.tls.RootCAs)
		require.Len(t, conn.tls.Certificates, 1)
		require.False(t, conn.tls.InsecureSkipVerify)
		require.GreaterOrEqual(t, conn.tls.MinVersion, uint16(tls.VersionTLS12))

		// Sentinel and Cluster nodes are verified under their own address.
		conn, _, err = decodeBrokerConfig(rawTestConfig(t, map[string]any{"url": "rediss://redis.example:6380/0",
			"tls_ca_file": tf.CA, "cluster_addrs": []string{"10.0.0.1:7000"}}))
		require.NoError(t, err)
		require.Empty(t, conn.tls.ServerName)

		conn, _, err = decodeResultConfig(rawTestConfig(t, map[string]any{"url": "rediss://h:6380/0", "tls_insecure_skip_verify": true}))
		require.NoError(t, err)
		require.True(t, conn.tls.InsecureSkipVerify)

		conn, _, err = decodeResultConfig(rawTestConfig(t, map[string]any{"url": "redis://h:6379/0"}))
		require.NoError(t, err)
		require.Nil(t, conn.tls, "a plain URL must not use TLS")
	})
}
