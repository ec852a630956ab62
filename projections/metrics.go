package projections

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are the projector's Prometheus metrics. Register them with
// NewMetrics(reg); a nil *Metrics records nothing.
type Metrics struct {
	lag         *prometheus.GaugeVec
	ops         prometheus.Counter
	events      prometheus.Counter
	batch       prometheus.Histogram
	errors      *prometheus.CounterVec
	deadLetters prometheus.Counter
	owned       prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "palimpsest_projector_lag_events",
			Help: "Events of the partition not yet delivered to its projector (the consumer's pending count).",
		}, []string{"projection", "partition"}),
		ops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "palimpsest_projector_ops_total",
			Help: "Ops folded into document states and committed; its rate is the projection's ops per second.",
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "palimpsest_projector_events_total",
			Help: "Events fetched from the log, including skipped redeliveries and dead letters.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "palimpsest_projector_batch_duration_seconds",
			Help:    "Time from a batch's fetch to its acknowledgement: fold, commit, ack.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "palimpsest_projector_errors_total",
			Help: "Errors by stage (fetch, load, commit, ack, lease, snapshot, readmodel); each is retried.",
		}, []string{"stage"}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "palimpsest_projector_dead_letters_total",
			Help: "Poison events (undecodable or refused by the CRDT) set aside on the dead-letter subject.",
		}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "palimpsest_projector_partitions_owned",
			Help: "Partitions this process holds the lease of.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.lag, m.ops, m.events, m.batch, m.errors, m.deadLetters, m.owned)
	}
	return m
}

func (m *Metrics) setLag(projection string, p int, lag uint64) {
	if m != nil {
		m.lag.WithLabelValues(projection, strconv.Itoa(p)).Set(float64(lag))
	}
}

func (m *Metrics) batchDone(events, ops int, seconds float64) {
	if m != nil {
		m.events.Add(float64(events))
		m.ops.Add(float64(ops))
		m.batch.Observe(seconds)
	}
}

func (m *Metrics) error(stage string) {
	if m != nil {
		m.errors.WithLabelValues(stage).Inc()
	}
}

func (m *Metrics) deadLetter() {
	if m != nil {
		m.deadLetters.Inc()
	}
}

func (m *Metrics) setOwned(n int) {
	if m != nil {
		m.owned.Set(float64(n))
	}
}

// Owned returns how many partitions the projector holds now.
func (m *Metrics) Owned() int {
	if m == nil {
		return 0
	}
	var d dto.Metric
	_ = m.owned.Write(&d)
	return int(d.GetGauge().GetValue())
}

// Events returns how many events the projector has committed and
// acknowledged.
func (m *Metrics) Events() uint64 {
	if m == nil {
		return 0
	}
	var d dto.Metric
	_ = m.events.Write(&d)
	return uint64(d.GetCounter().GetValue())
}
