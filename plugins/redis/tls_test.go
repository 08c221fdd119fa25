package taskiqredis

// TLS: test certificates (used by the topology tests against real servers)
// and the tls_* attributes, checked without a server.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// --- TLS ---

// tlsFiles are a test CA, a server certificate for 127.0.0.1/localhost and
// a client certificate, all signed by the CA, as PEM files.
type tlsFiles struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newTLSFiles(t *testing.T) *tlsFiles {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "taskiq-go test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	f := &tlsFiles{ca: filepath.Join(dir, "ca.crt")}
	writePEM(t, f.ca, "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage ...x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: usage,
			DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		require.NoError(t, err)
		keyDER, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		certPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		writePEM(t, certPath, "CERTIFICATE", der)
		writePEM(t, keyPath, "EC PRIVATE KEY", keyDER)
		return certPath, keyPath
	}
	// Cluster nodes present the server certificate to each other on the
	// cluster bus, as clients too.
	f.serverCert, f.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	f.clientCert, f.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return f
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

// serverLines configures a TLS server with these files; authClients makes
// it require a client certificate signed by the CA.
func (f *tlsFiles) serverLines(authClients bool) []string {
	auth := "no"
	if authClients {
		auth = "yes"
	}
	return []string{"tls-cert-file " + f.serverCert, "tls-key-file " + f.serverKey,
		"tls-ca-cert-file " + f.ca, "tls-auth-clients " + auth}
}

// clientTLS is the test's own TLS configuration for admin clients (it also
// presents the client certificate, which servers without client auth
// ignore).
func (f *tlsFiles) clientTLS(t testing.TB) *tls.Config {
	pemCA, err := os.ReadFile(f.ca)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pemCA))
	pair, err := tls.LoadX509KeyPair(f.clientCert, f.clientKey)
	require.NoError(t, err)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// TestTLSAttributes checks the tls_* attributes without a server: they are
// in both schemas, are refused with a plain redis:// URL (which would send
// everything unencrypted), report unreadable files against their
// attribute, and end up in the client's TLS configuration.
func TestTLSAttributes(t *testing.T) {
	t.Parallel()
	tf := newTLSFiles(t)
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
		{"CAWithPlainURL", map[string]any{"url": "redis://h:6379/0", "tls_ca_file": tf.ca}, "tls_ca_file", "rediss://"},
		{"SkipVerifyWithPlainURL", map[string]any{"url": "redis://h:6379/0", "tls_insecure_skip_verify": true}, "tls_insecure_skip_verify", "rediss://"},
		{"CertWithoutKey", map[string]any{"url": "rediss://h:6379/0", "tls_cert_file": tf.clientCert}, "tls_key_file", "private key"},
		{"KeyWithoutCert", map[string]any{"url": "rediss://h:6379/0", "tls_key_file": tf.clientKey}, "tls_cert_file", "certificate"},
		{"MissingCAFile", map[string]any{"url": "rediss://h:6379/0", "tls_ca_file": "/nonexistent/ca.pem"}, "tls_ca_file", "/nonexistent/ca.pem"},
		{"CAFileNotPEM", map[string]any{"url": "rediss://h:6379/0", "tls_ca_file": notPEM}, "tls_ca_file", "no PEM certificate"},
		{"KeyNotMatching", map[string]any{"url": "rediss://h:6379/0", "tls_cert_file": tf.clientCert, "tls_key_file": tf.serverKey}, "tls_cert_file", "cannot load"},
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
			"tls_ca_file": tf.ca, "tls_cert_file": tf.clientCert, "tls_key_file": tf.clientKey}))
		require.NoError(t, err)
		require.NotNil(t, conn.tls)
		require.Equal(t, "redis.example", conn.tls.ServerName)
		require.NotNil(t, conn.tls.RootCAs)
		require.Len(t, conn.tls.Certificates, 1)
		require.False(t, conn.tls.InsecureSkipVerify)
		require.GreaterOrEqual(t, conn.tls.MinVersion, uint16(tls.VersionTLS12))

		// Sentinel and Cluster nodes are verified under their own address.
		conn, _, err = decodeBrokerConfig(rawTestConfig(t, map[string]any{"url": "rediss://redis.example:6380/0",
			"tls_ca_file": tf.ca, "cluster_addrs": []string{"10.0.0.1:7000"}}))
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
