package telemetry

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// QueueStat is one queue's figures as the broker counts them.
type QueueStat struct {
	// Broker is the broker block the queue belongs to.
	Broker string
	// Queue is the queue's name.
	Queue string
	// Depth is the number of messages waiting to be delivered.
	Depth int64
	// OldestAge is how long the oldest waiting message has waited; zero
	// when the queue is empty or the broker cannot tell.
	OldestAge time.Duration
}

// QueueStatsFunc reads the figures of every queue (an inspector call).
type QueueStatsFunc func(ctx context.Context) ([]QueueStat, error)

// DefaultQueueStatsInterval is how often the queue gauges are refreshed.
const DefaultQueueStatsInterval = 15 * time.Second

// queueGauges serves taskiq_queue_depth and taskiq_queue_oldest_age_seconds
// from figures read on an interval: a scrape reads the cached figures and
// never makes the broker count.
type queueGauges struct {
	read   QueueStatsFunc
	every  time.Duration
	after  func(time.Duration) <-chan time.Time
	logger hclog.Logger
	done   chan struct{}

	mu    sync.RWMutex
	stats []QueueStat

	depth, age *prometheus.Desc
}

func newQueueGauges(read QueueStatsFunc, every time.Duration, after func(time.Duration) <-chan time.Time, logger hclog.Logger) *queueGauges {
	if every <= 0 {
		every = DefaultQueueStatsInterval
	}
	if after == nil {
		after = time.After
	}
	labels := []string{"broker", labelQueue}
	return &queueGauges{read: read, every: every, after: after, logger: logger, done: make(chan struct{}),
		depth: prometheus.NewDesc("taskiq_queue_depth", "Messages waiting in the queue, as last read from the broker's inspector.", labels, nil),
		age:   prometheus.NewDesc("taskiq_queue_oldest_age_seconds", "Age of the oldest waiting message, as last read from the broker's inspector.", labels, nil),
	}
}

// start reads the figures now and then every interval until shutdown.
func (q *queueGauges) start(wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			q.refresh()
			select {
			case <-q.done:
				return
			case <-q.after(q.every):
			}
		}
	}()
}

func (q *queueGauges) shutdown() { close(q.done) }

func (q *queueGauges) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), q.every)
	defer cancel()
	go func() {
		select {
		case <-q.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	stats, err := q.read(ctx)
	if err != nil {
		// Keep the last figures: a gap in the broker's answers is not an
		// empty queue.
		q.logger.Warn("reading queue figures for the queue gauges failed; keeping the last ones", "error", err)
		return
	}
	q.mu.Lock()
	q.stats = stats
	q.mu.Unlock()
}

// Describe and Collect make queueGauges a prometheus.Collector.
func (q *queueGauges) Describe(ch chan<- *prometheus.Desc) { ch <- q.depth; ch <- q.age }

func (q *queueGauges) Collect(ch chan<- prometheus.Metric) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	for _, s := range q.stats {
		ch <- prometheus.MustNewConstMetric(q.depth, prometheus.GaugeValue, float64(s.Depth), s.Broker, s.Queue)
		ch <- prometheus.MustNewConstMetric(q.age, prometheus.GaugeValue, s.OldestAge.Seconds(), s.Broker, s.Queue)
	}
}

// QueueWatcher is the running refresh of the queue gauges; Shutdown ends it.
type QueueWatcher struct {
	q  *queueGauges
	wg sync.WaitGroup
}

// WatchQueues registers the queue gauges with the Recorder's Prometheus
// registerer and refreshes them from read every interval (after, when
// set, replaces time.After for tests). It returns nil when the Recorder
// has no Prometheus metrics.
func (r *Recorder) WatchQueues(reg prometheus.Registerer, read QueueStatsFunc, every time.Duration,
	after func(time.Duration) <-chan time.Time, logger hclog.Logger) (*QueueWatcher, error) {
	if r == nil || r.prom == nil || reg == nil {
		return nil, nil
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	q := newQueueGauges(read, every, after, logger)
	if err := reg.Register(q); err != nil {
		return nil, err
	}
	w := &QueueWatcher{q: q}
	q.start(&w.wg)
	return w, nil
}

// Shutdown stops the refresh and returns once its goroutine ended.
func (w *QueueWatcher) Shutdown() {
	if w == nil {
		return
	}
	w.q.shutdown()
	w.wg.Wait()
}
