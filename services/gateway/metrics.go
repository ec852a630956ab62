package gateway

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/palimpsest-editor/palimpsest/schemas"
)

// metrics are the gateway's Prometheus metrics, named with units.
type metrics struct {
	connections   prometheus.Gauge
	documents     prometheus.Gauge
	frames        *prometheus.CounterVec // by type
	ops           prometheus.Counter
	batches       *prometheus.CounterVec // by result: ack, or the nack code's text
	appendSeconds prometheus.Histogram
	broadcast     prometheus.Counter
	sent          prometheus.Counter
	closes        *prometheus.CounterVec   // by close code
	roundSeconds  *prometheus.HistogramVec // committer rounds, by how: group or each
	roundOps      *prometheus.HistogramVec // committer rounds' ops, by how

	acks      prometheus.Counter                       // batches{result="ack"}
	frameType map[schemas.FrameType]prometheus.Counter // frames by client frame type
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "palimpsest_gateway_connections",
			Help: "Open WebSocket connections that have opened a document."}),
		documents: prometheus.NewGauge(prometheus.GaugeOpts{Name: "palimpsest_gateway_documents",
			Help: "Documents with a live log subscription in this process."}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palimpsest_gateway_frames_received_total",
			Help: "Frames received from clients, by frame type."}, []string{"type"}),
		ops: prometheus.NewCounter(prometheus.CounterOpts{Name: "palimpsest_gateway_ops_appended_total",
			Help: "Ops acknowledged by the log (duplicates included)."}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palimpsest_gateway_batches_total",
			Help: "Batches answered, by result: ack or the nack's error code."}, []string{"result"}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "palimpsest_gateway_append_seconds",
			Help:    "Time from a batch's arrival to the log's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		broadcast: prometheus.NewCounter(prometheus.CounterOpts{Name: "palimpsest_gateway_events_broadcast_total",
			Help: "Log events fanned out by this process (once per event, whatever the receivers)."}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "palimpsest_gateway_frames_sent_total",
			Help: "Frames queued to clients."}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palimpsest_gateway_closes_total",
			Help: "Connections closed by the server, by WebSocket close code."}, []string{"code"}),
		roundSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "palimpsest_gateway_log_round_seconds",
			Help:    "Duration of the committer's rounds of appends, by how they were appended: group (one atomic batch across documents) or each (batch by batch).",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 14)}, []string{"how"}),
		roundOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "palimpsest_gateway_log_round_ops",
			Help:    "Ops in each of the committer's rounds, by how they were appended.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10)}, []string{"how"}),
	}
	m.acks = m.batches.WithLabelValues("ack")
	m.frameType = map[schemas.FrameType]prometheus.Counter{}
	for _, t := range []schemas.FrameType{schemas.FrameHello, schemas.FrameSubmit, schemas.FramePresence, schemas.FrameAuth} {
		m.frameType[t] = m.frames.WithLabelValues(t.String())
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.documents, m.frames, m.ops, m.batches, m.appendSeconds, m.broadcast, m.sent, m.closes, m.roundSeconds, m.roundOps)
	}
	return m
}

func (m *metrics) closed(code int) { m.closes.WithLabelValues(strconv.Itoa(code)).Inc() }

func (m *metrics) frame(t schemas.FrameType) {
	if c, ok := m.frameType[t]; ok {
		c.Inc()
		return
	}
	m.frames.WithLabelValues(t.String()).Inc()
}
