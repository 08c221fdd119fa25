package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// healthState is what the health endpoints report: the state of each worker
// slot, published by the supervisor's loop.
type healthState struct {
	mu     sync.Mutex
	states []string
}

func newHealthState(workers int) *healthState {
	st := make([]string, workers)
	for i := range st {
		st[i] = "starting"
	}
	return &healthState{states: st}
}

func (h *healthState) set(states []string) {
	h.mu.Lock()
	h.states = states
	h.mu.Unlock()
}

// ready reports whether every worker is listening, and a line per worker.
func (h *healthState) ready() (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ok := true
	var b strings.Builder
	for i, s := range h.states {
		if s != "ready" {
			ok = false
		}
		fmt.Fprintf(&b, "worker %d: %s\n", i+1, s)
	}
	return ok, b.String()
}

// healthHandler answers /livez and /readyz from h.
func healthHandler(h *healthState) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, body := h.ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprint(w, body)
	})
	return mux
}

// serveHealth serves /livez (200 while the supervisor runs) and /readyz
// (200 once every worker has its broker stream open; 503 before, while
// stopping, and while a worker's broker has been failing for longer than
// core.DefaultUnreadyAfter). It listens before returning, so a bad address is an error now.
func serveHealth(addr string, h *healthState, logger hclog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--health-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: healthHandler(h), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			logger.Error("health endpoint stopped", "error", err)
		}
	}()
	logger.Info("serving /livez and /readyz", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
