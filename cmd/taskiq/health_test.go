package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// TestReadyzFollowsWorkerStatusLines: /readyz answers 503, naming the
// worker and why, while a worker reports its broker unavailable, and 200
// again once it reports ready.
func TestReadyzFollowsWorkerStatusLines(t *testing.T) {
	s := &supervisor{
		logger: hclog.NewNullLogger(),
		health: newHealthState(2),
		live:   map[*child]bool{},
	}
	for slot := range 2 {
		c := &child{id: slot + 1, slot: slot, cmd: &exec.Cmd{Process: &os.Process{Pid: 1000 + slot}}}
		s.slots = append(s.slots, c)
		s.live[c] = true
	}
	readyz := func() (int, string) {
		rec := httptest.NewRecorder()
		healthHandler(s.health, nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	feed := func(c *child, line string) {
		ev, ok := statusEvent(c, line)
		require.True(t, ok, line)
		s.handle(ev)
		s.publishHealth()
	}
	feed(s.slots[0], "ready")
	feed(s.slots[1], "ready\n")
	code, body := readyz()
	require.Equal(t, http.StatusOK, code, body)

	feed(s.slots[1], `unready broker "default" unavailable for 10s: dial tcp 127.0.0.1:6379: connection refused`)
	code, body = readyz()
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "worker 1: ready\n"+
		`worker 2: not ready: broker "default" unavailable for 10s: dial tcp 127.0.0.1:6379: connection refused`+"\n", body)
	require.True(t, s.slots[1].ready, "a worker that was ready stays known as once ready (restart backoff, rolling restart)")

	feed(s.slots[1], "ready")
	code, body = readyz()
	require.Equal(t, http.StatusOK, code, body)

	_, known := statusEvent(s.slots[0], "something else")
	require.False(t, known)
}
