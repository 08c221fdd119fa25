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

// healthHandler answers /livez and /readyz from h, and /metrics from
// metrics when it is set.
func healthHandler(h *healthState, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	if metrics != nil {
		mux.Handle("/metrics", metrics)
	}
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
func serveHealth(addr string, h *healthState, metrics http.Handler, logger hclog.Logger) (stop func(), err error) {
	return serveHTTP("--health-addr", addr, healthHandler(h, metrics), logger)
}

// metricsMux serves metrics on /metrics.
func metricsMux(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics)
	return mux
}

// serveHTTP serves handler on addr (named by flag in errors). It listens
// before returning, so a bad address is an error now.
func serveHTTP(flag, addr string, handler http.Handler, logger hclog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, addr, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			logger.Error("endpoint stopped", "flag", flag, "error", err)
		}
	}()
	logger.Info("serving "+flag, "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
