package taskiqredis

import (
	"strings"
	"testing"
)

// A URL that does not parse is quoted in the error without its password,
// whether net/url (bad port, bad host) or go-redis (bad db) rejects it.
func TestParseURLErrorHidesPassword(t *testing.T) {
	for raw, shown := range map[string]string{
		"redis://:hunter2@127.0.0.1:notaport/0":    "redis://:xxxxx@127.0.0.1:notaport/0 is not a valid Redis URL",
		"redis://user:hunter2@127.0.0.1:6379/nodb": "redis://user:xxxxx@127.0.0.1:6379/nodb is not a valid Redis URL",
		"redis://user:hunter2@[::1/0":              "redis://user:xxxxx@[::1/0 is not a valid Redis URL",
	} {
		_, err := parseURL(raw)
		if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), shown) {
			t.Errorf("parseURL(%q): %v; want an error starting %q, without the password", raw, err, shown)
		}
	}
}
