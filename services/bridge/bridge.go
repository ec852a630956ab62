package bridge

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
)

// Config tunes the outbound bridge. Every zero field takes its default.
type Config struct {
	// Consumer is the durable JetStream consumer's name. Default "palimpsest-bridge".
	Consumer string
	// Batch is the most events fetched, written and acknowledged at once. Default 500.
	Batch int
	// FetchWait is how long a fetch waits for a first event. Default 1 second.
	FetchWait time.Duration
	// AckWait is the consumer's ack wait. Default 30 seconds.
	AckWait time.Duration
	// LagEvery is how often the lag metric is refreshed. Default 1 second.
	LagEvery time.Duration
	Logger   *slog.Logger
	// Metrics receives the bridge's metrics. Default: unregistered ones.
	Metrics *Metrics
}

func (c Config) withDefaults() Config {
	if c.Consumer == "" {
		c.Consumer = "palimpsest-bridge"
	}
	if c.Batch == 0 {
		c.Batch = 500
	}
	if c.FetchWait == 0 {
		c.FetchWait = time.Second
	}
	if c.LagEvery == 0 {
		c.LagEvery = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	return c
}

// Bridge mirrors the log to its sinks through a durable consumer:
//
//	for {
//		batch := consumer.Fetch()        // in stream order, from the first unacknowledged event
//		every sink: Write(batch) until it succeeds (in parallel, each retrying with backoff)
//		consumer.Ack()                   // only now: everything up to the batch's end is mirrored
//	}
//
// So an event is acknowledged only after every sink confirmed it, a batch
// starts only after the previous one is acknowledged (per-document order in
// every sink), and after a crash the consumer resumes at its first
// unacknowledged event; sinks make the repeats no-ops.
type Bridge struct {
	log     *eventlog.Log
	cfg     Config
	sinks   []Sink
	done    []atomic.Uint64 // per sink: the last sequence it confirmed
	acked   atomic.Uint64
	running atomic.Bool // the consumer is open
}

// New returns a bridge from l to sinks (at least one).
func New(l *eventlog.Log, cfg Config, sinks ...Sink) (*Bridge, error) {
	if len(sinks) == 0 {
		return nil, errors.New("bridge: no sink enabled")
	}
	return &Bridge{log: l, cfg: cfg.withDefaults(), sinks: sinks, done: make([]atomic.Uint64, len(sinks))}, nil
}

// Running reports whether Run has opened its consumer and not returned.
func (b *Bridge) Running() bool { return b.running.Load() }

// Acked returns the last sequence the bridge acknowledged.
func (b *Bridge) Acked() uint64 { return b.acked.Load() }

// Run mirrors until ctx ends, then returns nil. It waits out unavailable
// servers (NATS, Kafka, DynamoDB) with capped backoff, logging each failure.
func (b *Bridge) Run(ctx context.Context) error {
	var cons *eventlog.StreamConsumer
	bo := newBackoff()
	for {
		var err error
		cons, err = b.log.OpenStreamConsumer(ctx, b.cfg.Consumer, eventlog.StreamConsumerConfig{
			AckWait: b.cfg.AckWait, MaxAckPending: 2 * b.cfg.Batch, Description: "Palimpsest bridge to Kafka and DynamoDB"})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		b.cfg.Logger.Warn("bridge: open consumer", "consumer", b.cfg.Consumer, "err", err)
		if !bo.wait(ctx) {
			return nil
		}
	}
	for {
		st, err := cons.State(ctx)
		if err == nil {
			b.acked.Store(st.Acked)
			for i := range b.done {
				b.done[i].Store(st.Acked)
			}
			break
		}
		if !bo.wait(ctx) {
			return nil
		}
	}
	b.cfg.Logger.Info("bridge: running", "consumer", b.cfg.Consumer, "acked", b.acked.Load(), "sinks", b.sinkNames())
	b.running.Store(true)
	defer b.running.Store(false)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.lagLoop(ctx)
	}()
	defer wg.Wait()

	bo.reset()
	for ctx.Err() == nil {
		ds, err := cons.Fetch(ctx, b.cfg.Batch, b.cfg.FetchWait)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			b.cfg.Logger.Warn("bridge: fetch", "err", err)
			bo.wait(ctx)
			continue
		}
		bo.reset()
		if len(ds) == 0 {
			b.forget(ctx, b.acked.Load()) // keeps the Kafka checkpoint fresh while idle
			continue
		}
		start := time.Now()
		evs := make([]eventlog.Event, 0, len(ds))
		for _, d := range ds {
			if d.Err != nil {
				b.cfg.Metrics.BadEvents.Inc()
				b.cfg.Logger.Error("bridge: stored event does not decode; not mirrored", "seq", d.Seq, "err", d.Err)
				continue
			}
			evs = append(evs, d.Event)
		}
		last := ds[len(ds)-1].Seq
		if !writeAll(ctx, b.sinks, evs, b.cfg.Metrics, b.cfg.Logger, func(i int) { b.done[i].Store(last) }) {
			break
		}
		if !b.ack(ctx, cons) {
			continue // The next Fetch rewinds; the sinks skip what they have.
		}
		b.acked.Store(last)
		b.cfg.Metrics.Acked.Set(float64(last))
		b.cfg.Metrics.BatchSeconds.Observe(time.Since(start).Seconds())
		b.forget(ctx, last)
	}
	return nil
}

// ack acknowledges the fetched events, retrying a few times.
func (b *Bridge) ack(ctx context.Context, cons *eventlog.StreamConsumer) bool {
	bo := newBackoff()
	for range 8 {
		err := cons.Ack(ctx)
		if err == nil {
			return true
		}
		b.cfg.Logger.Warn("bridge: ack", "err", err)
		if !bo.wait(ctx) {
			return false
		}
	}
	return false
}

func (b *Bridge) forget(ctx context.Context, through uint64) {
	for _, s := range b.sinks {
		if f, ok := s.(Forgetter); ok {
			f.Forget(ctx, through)
		}
	}
}

func (b *Bridge) sinkNames() []string {
	var names []string
	for _, s := range b.sinks {
		names = append(names, s.Name())
	}
	return names
}

// lagLoop refreshes palimpsest_bridge_lag_events until ctx ends.
func (b *Bridge) lagLoop(ctx context.Context) {
	t := time.NewTicker(b.cfg.LagEvery)
	defer t.Stop()
	for {
		if info, err := b.log.StreamInfo(ctx); err == nil {
			head := info.State.LastSeq
			for i, s := range b.sinks {
				done := b.done[i].Load()
				b.cfg.Metrics.Lag.WithLabelValues(s.Name()).Set(float64(head - min(done, head)))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// writeAll writes evs to every sink in parallel, each retrying until it
// succeeds; confirmed(i) runs when sink i has. It returns false when ctx
// ended first.
func writeAll(ctx context.Context, sinks []Sink, evs []eventlog.Event, m *Metrics, log *slog.Logger, confirmed func(i int)) bool {
	var wg sync.WaitGroup
	for i, s := range sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bo := newBackoff()
			for {
				w, err := s.Write(ctx, evs)
				m.written(s.Name(), w)
				if err == nil {
					confirmed(i)
					return
				}
				if ctx.Err() != nil {
					return
				}
				m.SinkErrors.WithLabelValues(s.Name()).Inc()
				log.Warn("bridge: sink write failed; retrying", "sink", s.Name(), "events", len(evs), "err", err)
				if !bo.wait(ctx) {
					return
				}
			}
		}()
	}
	wg.Wait()
	return ctx.Err() == nil
}
