package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// Metrics of `taskiq worker` with --workers N: each child serves its own
// registry on a loopback port it picks and tells the supervisor about it
// on its status pipe ("metrics <addr>"); the supervisor's /metrics scrapes
// every live child when it is scraped and serves the union, each series
// labelled worker="<slot>". One address to scrape, however many children,
// and a child's restart is seen as its counters starting again (Prometheus'
// rate() handles such resets).

// envWorkerMetrics, set to 1, makes a child serve its metrics for the
// supervisor.
const envWorkerMetrics = "TASKIQ_WORKER_METRICS"

// statusMetrics is the status line with which a child names its metrics
// address.
const statusMetrics = "metrics"

// childScrapeTimeout bounds the scrape of one child.
const childScrapeTimeout = 5 * time.Second

// childMetrics are the metrics addresses of the live children.
type childMetrics struct {
	mu    sync.Mutex
	addrs map[int]childAddr // by pid
}

type childAddr struct {
	worker int
	addr   string
}

func newChildMetrics() *childMetrics { return &childMetrics{addrs: map[int]childAddr{}} }

func (m *childMetrics) set(pid, worker int, addr string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.addrs[pid] = childAddr{worker, addr}
	m.mu.Unlock()
}

func (m *childMetrics) remove(pid int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.addrs, pid)
	m.mu.Unlock()
}

// Gather scrapes every child and labels its series with its worker number.
// A child that does not answer is left out (it is starting or stopping).
func (m *childMetrics) Gather() ([]*dto.MetricFamily, error) {
	m.mu.Lock()
	children := make([]childAddr, 0, len(m.addrs))
	for _, c := range m.addrs {
		children = append(children, c)
	}
	m.mu.Unlock()
	sort.Slice(children, func(i, j int) bool { return children[i].worker < children[j].worker })
	byName := map[string]*dto.MetricFamily{}
	var names []string
	for _, c := range children {
		fams, err := scrapeChild(c.addr)
		if err != nil {
			continue
		}
		label := &dto.LabelPair{Name: proto.String("worker"), Value: proto.String(strconv.Itoa(c.worker))}
		for name, f := range fams {
			for _, mt := range f.Metric {
				mt.Label = append(mt.Label, label)
				sort.Slice(mt.Label, func(i, j int) bool { return mt.Label[i].GetName() < mt.Label[j].GetName() })
			}
			if prev := byName[name]; prev != nil {
				prev.Metric = append(prev.Metric, f.Metric...)
				continue
			}
			byName[name] = f
			names = append(names, name)
		}
	}
	sort.Strings(names)
	out := make([]*dto.MetricFamily, 0, len(names))
	for _, n := range names {
		out = append(out, byName[n])
	}
	return out, nil
}

func scrapeChild(addr string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), childScrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", addr, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// supervisorMetrics is the supervisor's /metrics: its own process's
// metrics and the union of its children's.
func supervisorMetrics(children *childMetrics) http.Handler {
	own := prometheus.NewRegistry()
	own.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "taskiq_supervisor"}))
	return promhttp.HandlerFor(prometheus.Gatherers{own, children}, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// serveChildMetrics serves a child's registry on a loopback port and
// returns the address and a stop function.
func serveChildMetrics(reg *prometheus.Registry, logger hclog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			logger.Error("metrics endpoint stopped", "error", err)
		}
	}()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// childRegistry is a child's registry: the host's metrics (core.WithMetrics)
// and the Go runtime's and process's.
func childRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
