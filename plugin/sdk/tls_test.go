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

// TLSFiles embedded in a config struct is filled by Config.Decode from the
// attributes TLSAttributes declares, and is refused attribute by attribute
// on a connection without TLS.
func TestTLSFilesAttributes(t *testing.T) {
	var names []string
	for _, a := range sdk.TLSAttributes("Needs a tls:// url.") {
		names = append(names, a.Name)
		require.Contains(t, a.Description, "Needs a tls:// url.")
	}
	require.Equal(t, []string{"tls_ca_file", "tls_cert_file", "tls_key_file", "tls_insecure_skip_verify"}, names)

	var c struct {
		URL string `json:"url"`
		sdk.TLSFiles
	}
	require.NoError(t, sdk.Config{Raw: []byte(`{"url":"x","tls_ca_file":"ca.pem","tls_insecure_skip_verify":true}`)}.Decode(&c))
	require.Equal(t, sdk.TLSFiles{CAFile: "ca.pem", InsecureSkipVerify: true}, c.TLSFiles)
	require.True(t, c.Set())
	require.False(t, sdk.TLSFiles{}.Set())

	errs := c.RefuseWithoutTLS("write the url as tls://host")
	require.Len(t, errs, 2)
	var attrs []string
	for _, err := range errs {
		ces := sdk.ConfigErrors(err)
		require.Len(t, ces, 1)
		attrs = append(attrs, ces[0].Attribute)
		require.ErrorContains(t, err, "write the url as tls://host")
	}
	require.Equal(t, []string{"tls_ca_file", "tls_insecure_skip_verify"}, attrs)
	require.Empty(t, sdk.TLSFiles{}.RefuseWithoutTLS("x"))
}
