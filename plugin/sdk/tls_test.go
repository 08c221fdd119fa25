package sdk_test

import (
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/testcerts"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

func TestClientTLS(t *testing.T) {
	tf := testcerts.New(t)
	certFile, keyFile := tf.ClientCert, tf.ClientKey

	cfg, errs := sdk.ClientTLS(nil, sdk.TLSFiles{CAFile: tf.CA, CertFile: certFile, KeyFile: keyFile, ServerName: "broker.internal"})
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
