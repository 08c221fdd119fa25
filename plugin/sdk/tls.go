package sdk

import (
	"crypto/tls"
	"crypto/x509"
	"os"
)

// TLSFiles are a plugin's client TLS attributes. Errors name them as the
// plugins do: tls_ca_file, tls_cert_file and tls_key_file.
type TLSFiles struct {
	CAFile             string // PEM CA certificates that verify the server
	CertFile           string // PEM client certificate; with KeyFile
	KeyFile            string // PEM private key of CertFile
	ServerName         string // name to verify instead of the dialed host's ("": keep base's)
	InsecureSkipVerify bool   // accept any server certificate
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
