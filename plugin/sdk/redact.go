package sdk

import (
	"io"
	"regexp"
)

// urlCredentials matches the password of a URL written as
// scheme://user:password@host anywhere in a text, quoted or not. The
// password part stops at white space, a quote or a closing bracket, and runs
// to the last '@' before them, as net/url reads an unescaped '@' in a
// password; it may hold '/', which a hand-written password sometimes does
// (net/url then fails and quotes the whole URL in its error).
var urlCredentials = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@"'<>\\]*):([^\s"'<>\\]*)@`)

// RedactedPassword replaces a URL's password in the text RedactURLs returns,
// the same mark net/url's URL.Redacted uses.
const RedactedPassword = "xxxxx"

// RedactURLs returns s with the password of every scheme://user:password@
// URL in it replaced by "xxxxx", keeping the user name and everything else.
// It is the one redaction of URL credentials in taskiq: plugins pass their
// error messages through it, and the host passes every plugin error,
// diagnostic and log line through it again, because an error quoted from a
// library (net/url's *url.Error quotes the whole URL it failed to parse)
// carries the password whatever the plugin meant to print.
func RedactURLs(s string) string {
	if !containsScheme(s) {
		return s
	}
	return urlCredentials.ReplaceAllString(s, "${1}:"+RedactedPassword+"@")
}

// containsScheme is the cheap test that keeps RedactURLs off the regexp
// engine for the common text without any "://".
func containsScheme(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == ':' && s[i+1] == '/' && s[i+2] == '/' {
			return true
		}
	}
	return false
}

// RedactingWriter returns a writer that passes each Write through
// RedactURLs. Loggers (hclog) and fmt.Fprint* write one line per call, so a
// URL is never split across two writes.
func RedactingWriter(w io.Writer) io.Writer { return redactingWriter{w} }

type redactingWriter struct{ w io.Writer }

func (r redactingWriter) Write(p []byte) (int, error) {
	s := string(p)
	red := RedactURLs(s)
	if red == s {
		return r.w.Write(p)
	}
	if _, err := io.WriteString(r.w, red); err != nil {
		return 0, err
	}
	// The caller wrote len(p) bytes of its text; the redacted text may be
	// shorter or longer.
	return len(p), nil
}
