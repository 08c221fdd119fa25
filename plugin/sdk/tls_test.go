package sdk_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// writePair writes a self-signed certificate and its key as PEM files.
func writePair(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

func TestClientTLS(t *testing.T) {
	certFile, keyFile := writePair(t)

	cfg, errs := sdk.ClientTLS(nil, sdk.TLSFiles{CAFile: certFile, CertFile: certFile, KeyFile: keyFile, ServerName: "broker.internal"})
	require.Empty(t, errs)
	require.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
	require.Equal(t, "broker.internal", cfg.ServerName)
	require.NotNil(t, cfg.RootCAs)
	require.Len(t, cfg.Certificates, 1)
	require.False(t, cfg.InsecureSkipVerify)

	base := &tls.Config{ServerName: "from-url", MinVersion: tls.VersionTLS13}
	cfg, errs = sdk.ClientTLS(base, sdk.TLSFiles{InsecureSkipVerify: true})
	require.Empty(t, errs)
	require.Equal(t, "from-url", cfg.ServerName, "an empty ServerName keeps base's")
	require.Equal(t, uint16(tls.VersionTLS13), cfg.MinVersion)
	require.True(t, cfg.InsecureSkipVerify)
	require.False(t, base.InsecureSkipVerify, "base is copied, not changed")

	cases := map[string]struct {
		files sdk.TLSFiles
		attr  string
	}{
		"missing CA file": {sdk.TLSFiles{CAFile: filepath.Join(t.TempDir(), "none.pem")}, "tls_ca_file"},
		"CA not PEM":      {sdk.TLSFiles{CAFile: keyFile}, "tls_ca_file"},
		"cert alone":      {sdk.TLSFiles{CertFile: certFile}, "tls_key_file"},
		"key alone":       {sdk.TLSFiles{KeyFile: keyFile}, "tls_cert_file"},
		"key of nothing":  {sdk.TLSFiles{CertFile: keyFile, KeyFile: keyFile}, "tls_cert_file"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, errs := sdk.ClientTLS(nil, c.files)
			require.Len(t, errs, 1)
			require.Contains(t, errs[0].Error(), c.attr)
		})
	}
}
