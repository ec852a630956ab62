package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the bridge's Prometheus metrics. Lag per sink is
// palimpsest_bridge_lag_events{sink}: the log's last sequence minus the last
// sequence the sink confirmed (sequences are contiguous, so it counts events).
type Metrics struct {
	Lag          *prometheus.GaugeVec   // sink
	Events       *prometheus.CounterVec // sink, result: mirrored, already_there, skipped
	SinkErrors   *prometheus.CounterVec // sink
	Acked        prometheus.Gauge
	BadEvents    prometheus.Counter
	Inbound      *prometheus.CounterVec // result: appended, duplicate, echo, dead_letter
	BatchSeconds prometheus.Histogram
}

// NewMetrics creates the metrics and registers them with reg, unless reg is
// nil. Metrics already registered with reg (by an earlier NewMetrics) are
// reused, so every bridge or replay in one process counts into one set.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "palimpsest_bridge_lag_events",
			Help: "Events in the log that the sink has not confirmed yet.",
		}, []string{"sink"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "palimpsest_bridge_events_total",
			Help: "Events handed to a sink, by result: mirrored now, already_there (a repeat after a retry or a restart), skipped (not for this sink).",
		}, []string{"sink", "result"}),
		SinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "palimpsest_bridge_sink_errors_total",
			Help: "Failed writes to a sink; the bridge retries them.",
		}, []string{"sink"}),
		Acked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "palimpsest_bridge_acked_sequence",
			Help: "The last log sequence every enabled sink confirmed and the bridge acknowledged.",
		}),
		BadEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "palimpsest_bridge_bad_events_total",
			Help: "Stored events that do not decode; they are not mirrored.",
		}),
		Inbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "palimpsest_bridge_inbound_records_total",
			Help: "Kafka records read by the inbound direction, by result: appended, duplicate (already in the log), echo (produced by the bridge), dead_letter.",
		}, []string{"result"}),
		BatchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "palimpsest_bridge_batch_duration_seconds",
			Help:    "Time from fetching a batch to acknowledging it, every sink included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
	if reg != nil {
		m.Lag = register(reg, m.Lag)
		m.Events = register(reg, m.Events)
		m.SinkErrors = register(reg, m.SinkErrors)
		m.Acked = register(reg, m.Acked)
		m.BadEvents = register(reg, m.BadEvents)
		m.Inbound = register(reg, m.Inbound)
		m.BatchSeconds = register(reg, m.BatchSeconds)
	}
	return m
}

// register registers c with reg, or returns the equal collector reg has.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(err)
}

func (m *Metrics) written(sink string, w Written) {
	m.Events.WithLabelValues(sink, "mirrored").Add(float64(w.New))
	m.Events.WithLabelValues(sink, "already_there").Add(float64(w.Already))
	m.Events.WithLabelValues(sink, "skipped").Add(float64(w.Skipped))
}
