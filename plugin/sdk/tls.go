package sdk

import (
	"crypto/tls"
	"crypto/x509"
	"os"
)

// TLSFiles are a plugin's client TLS attributes, tls_ca_file,
// tls_cert_file, tls_key_file and tls_insecure_skip_verify (TLSAttributes).
// Embedded in a plugin's config struct, Config.Decode fills them.
type TLSFiles struct {
	CAFile             string `json:"tls_ca_file"`              // PEM CA certificates that verify the server
	CertFile           string `json:"tls_cert_file"`            // PEM client certificate; with KeyFile
	KeyFile            string `json:"tls_key_file"`             // PEM private key of CertFile
	InsecureSkipVerify bool   `json:"tls_insecure_skip_verify"` // accept any server certificate
	ServerName         string `json:"-"`                        // name to verify instead of the dialed host's ("": keep base's)
}

// TLSAttributes are the schema attributes of TLSFiles. needs says when
// they apply, for the descriptions ("Needs an amqps:// url."; "" for
// none).
func TLSAttributes(needs string) []Attribute {
	if needs != "" {
		needs = " " + needs
	}
	return []Attribute{
		{Name: "tls_ca_file", Type: TypeString, Default: "", Description: "PEM file of the certificate " +
			"authorities that signed the server certificate; empty means the system's trust store." + needs},
		{Name: "tls_cert_file", Type: TypeString, Default: "", Description: "PEM client certificate for " +
			"servers that verify clients; set together with tls_key_file." + needs},
		{Name: "tls_key_file", Type: TypeString, Default: "", Description: "PEM private key of tls_cert_file." + needs},
		{Name: "tls_insecure_skip_verify", Type: TypeBool, Default: false, Description: "Accept any server " +
			"certificate. For tests only: it makes the connection open to interception; use " +
			"tls_ca_file instead." + needs},
	}
}

// Set reports whether any TLS attribute is set.
func (f TLSFiles) Set() bool {
	return f.CAFile != "" || f.CertFile != "" || f.KeyFile != "" || f.InsecureSkipVerify
}

// RefuseWithoutTLS is an AttrError for each TLS attribute that is set,
// for a connection that does not use TLS (which would otherwise send
// everything, passwords included, in the clear); fix says how to turn TLS
// on ("write the url as amqps://host:5671/vhost").
func (f TLSFiles) RefuseWithoutTLS(fix string) []error {
	var errs []error
	for _, a := range []struct {
		name string
		set  bool
	}{{"tls_ca_file", f.CAFile != ""}, {"tls_cert_file", f.CertFile != ""},
		{"tls_key_file", f.KeyFile != ""}, {"tls_insecure_skip_verify", f.InsecureSkipVerify}} {
		if a.set {
			errs = append(errs, AttrError(a.name, "is set, but the connection does not use TLS; %s", fix))
		}
	}
	return errs
}

// ClientTLS builds a client TLS configuration from f on top of base (a
// copy; nil starts from TLS 1.2 as the lowest version). The files are read
// here, at configuration time, so that a wrong path or a lone certificate
// or key is reported against its attribute (AttrError) rather than as a
// connection failure later. The configuration is returned even with
// errors, for the caller to collect them with its other attributes.
func ClientTLS(base *tls.Config, f TLSFiles) (*tls.Config, []error) {
	var errs []error
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		cfg = base.Clone()
	}
	if f.ServerName != "" {
		cfg.ServerName = f.ServerName
	}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		switch {
		case err != nil:
			errs = append(errs, AttrError("tls_ca_file", "cannot read the CA file: %v", err))
		default:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, AttrError("tls_ca_file", "%s holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\"); give the CA certificate in PEM form", f.CAFile))
			}
			cfg.RootCAs = pool
		}
	}
	switch {
	case f.CertFile != "" && f.KeyFile == "":
		errs = append(errs, AttrError("tls_key_file", "tls_cert_file is set, so give the file of its private key here"))
	case f.KeyFile != "" && f.CertFile == "":
		errs = append(errs, AttrError("tls_cert_file", "tls_key_file is set, so give the file of its certificate here"))
	case f.CertFile != "":
		pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			errs = append(errs, AttrError("tls_cert_file", "cannot load the client certificate %s with key %s: %v", f.CertFile, f.KeyFile, err))
		} else {
			cfg.Certificates = []tls.Certificate{pair}
		}
	}
	if f.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true
	}
	return cfg, errs
}
