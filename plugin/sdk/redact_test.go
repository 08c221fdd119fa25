package sdk

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
)

func TestRedactURLs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`parse "redis://:hunter2@127.0.0.1:notaport/0": invalid port`, `parse "redis://:xxxxx@127.0.0.1:notaport/0": invalid port`},
		{"redis://user:hunter2@host:6379/0", "redis://user:xxxxx@host:6379/0"},
		{"REDISS://u:p@ss:w/rd@host/1 and amqp://a:b@c", "REDISS://u:xxxxx@host/1 and amqp://a:xxxxx@c"},
		{"redis://host:6379/0", "redis://host:6379/0"},
		{"redis://user@host/0", "redis://user@host/0"},
		{"no url: a:b@c", "no url: a:b@c"},
		{`{"error":"dial redis://:pw@h:1/0 failed"}`, `{"error":"dial redis://:xxxxx@h:1/0 failed"}`},
	} {
		if got := RedactURLs(tc.in); got != tc.want {
			t.Errorf("RedactURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The errors of net/url and go-redis quote the URL they reject, password
// included; RedactURLs removes it from all of them.
func TestRedactURLsLibraryErrors(t *testing.T) {
	const secret = "s3cr3t-pass"
	for _, raw := range []string{
		"redis://:" + secret + "@127.0.0.1:notaport/0",
		"redis://user:" + secret + "@[::1/0",
		"redis://user:" + secret + "@host:6379/notadb",
		"redis://user:" + secret + "@ho st:6379/0",
	} {
		var errs []error
		if _, err := url.Parse(raw); err != nil {
			errs = append(errs, err)
		}
		if _, err := redis.ParseURL(raw); err != nil {
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			t.Fatalf("%s parsed; the test needs a URL that fails", raw)
		}
		for _, err := range errs {
			if !strings.Contains(err.Error(), secret) {
				continue // the library did not quote it: nothing to show
			}
			if got := RedactURLs(err.Error()); strings.Contains(got, secret) {
				t.Errorf("RedactURLs(%q) = %q still holds the password", err.Error(), got)
			}
		}
	}
	// The operator's case: go-redis returns net/url's *url.Error, which
	// quotes the whole URL.
	_, err := redis.ParseURL("redis://:" + secret + "@127.0.0.1:notaport/0")
	var ue *url.Error
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), secret) {
		t.Fatalf("go-redis no longer returns the *url.Error quoting the URL (%v): update this test", err)
	}
}

func TestRedactingWriterRedactsLogLines(t *testing.T) {
	var buf bytes.Buffer
	for _, json := range []bool{false, true} {
		buf.Reset()
		logger := hclog.New(&hclog.LoggerOptions{Output: RedactingWriter(&buf), JSONFormat: json})
		logger.Error("cannot start", "error", `parse "redis://:hunter2@h:x/0": invalid port`)
		if strings.Contains(buf.String(), "hunter2") || !strings.Contains(buf.String(), "xxxxx") {
			t.Fatalf("json=%v: %s", json, buf.String())
		}
	}
}
