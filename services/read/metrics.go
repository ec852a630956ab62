package read

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the read service's Prometheus metrics, named with units.
type metrics struct {
	requests       *prometheus.CounterVec   // by route and status
	requestSeconds *prometheus.HistogramVec // by route
	served         *prometheus.CounterVec   // current documents, by source
	cacheLookups   *prometheus.CounterVec   // hit or miss
	cacheErrors    *prometheus.CounterVec   // by op: get or fill
	cacheUp        prometheus.Gauge
	errors         *prometheus.CounterVec // by dependency: state, snapshot
	travelSeconds  *prometheus.HistogramVec
	travelEvents   prometheus.Histogram
	logEvents      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palimpsest_read_requests_total",
			Help: "HTTP requests answered, by route and status code."}, []string{"route", "code"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "palimpsest_read_request_seconds",
			Help: "Time to answer an HTTP request, by route.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}, []string{"route"}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palimpsest_read_documents_served_total",
			Help: "Current documents served, by source: cache, state (store) or log."}, []string{"source"}),
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palimpsest_read_cache_lookups_total",
			Help: "Read model lookups that answered, by result: hit or miss."}, []string{"result"}),
		cacheErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palimpsest_read_cache_errors_total",
			Help: "Failed read model calls, by op: get or fill. Reads went to the state store."}, []string{"op"}),
		cacheUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "palimpsest_read_cache_up",
			Help: "1 while the read model is used, 0 while it is bypassed after a failure."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palimpsest_read_dependency_errors_total",
			Help: "Failed calls to a dependency that the read path worked around, by dependency."}, []string{"dependency"}),
		travelSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "palimpsest_read_travel_seconds",
			Help:    "Time to build a document's state at a version, by base: cursor, snapshot, state or empty.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}, []string{"base"}),
		travelEvents: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "palimpsest_read_travel_replayed_events",
			Help: "Log events replayed onto the base to build a state.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		logEvents: prometheus.NewCounter(prometheus.CounterOpts{Name: "palimpsest_read_log_events_read_total",
			Help: "Events read from the log (the rest came from the in-process event cache)."}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.requestSeconds, m.served, m.cacheLookups, m.cacheErrors, m.cacheUp, m.errors, m.travelSeconds, m.travelEvents, m.logEvents)
	}
	return m
}

func (m *metrics) travel(base string, events int, d time.Duration) {
	m.travelSeconds.WithLabelValues(base).Observe(d.Seconds())
	m.travelEvents.Observe(float64(events))
}
