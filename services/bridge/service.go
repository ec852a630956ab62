package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/palimpsest-editor/palimpsest/eventlog"
)

// Sink names, as --sinks takes them.
const (
	SinkKafka    = "kafka"
	SinkDynamoDB = "dynamodb"
)

// Options is everything `palimpsest bridge run` and `replay` are configured
// with (flags and PALIMPSEST_* variables map onto it one to one).
type Options struct {
	// NATS is the event log's server URL (comma-separated for a cluster).
	NATS string
	// Log configures the event log; the zero value is the default layout.
	Log eventlog.Config
	// Sinks are the enabled sinks, SinkKafka and/or SinkDynamoDB.
	Sinks    []string
	Kafka    KafkaConfig
	DynamoDB DynamoConfig
	// Inbound also appends the Kafka topic's records from AWS-side producers
	// to the log (needs Kafka brokers; the Kafka sink may be off).
	Inbound bool
	Bridge  Config
	// Addr, when set, is the HTTP listener's host:port: /metrics, /healthz
	// (the process is up) and /readyz (connected to the log, sinks set up,
	// consumer open).
	Addr string
	// Registry receives the metrics. Default: a new registry with the Go
	// and process collectors.
	Registry *prometheus.Registry
	// OnListen, if set, is called with the HTTP listener's address.
	OnListen func(addr string)
}

func (o *Options) check() error {
	if len(o.Sinks) == 0 && !o.Inbound {
		return errors.New("bridge: no sink enabled and no inbound: nothing to do")
	}
	for _, s := range o.Sinks {
		if s != SinkKafka && s != SinkDynamoDB {
			return fmt.Errorf("bridge: unknown sink %q (want %s or %s)", s, SinkKafka, SinkDynamoDB)
		}
	}
	if (slices.Contains(o.Sinks, SinkKafka) || o.Inbound) && len(o.Kafka.Brokers) == 0 {
		return errors.New("bridge: Kafka needs brokers (--kafka)")
	}
	if o.NATS == "" {
		o.NATS = "nats://127.0.0.1:4222"
	}
	if o.Bridge.Logger == nil {
		o.Bridge.Logger = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
		o.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if o.Bridge.Metrics == nil {
		o.Bridge.Metrics = NewMetrics(o.Registry)
	}
	return nil
}

// connect opens the log, waiting for NATS until ctx ends.
func (o *Options) connect(ctx context.Context) (*eventlog.Log, error) {
	bo := newBackoff()
	for {
		l, err := eventlog.Connect(ctx, o.NATS, o.Log)
		if err == nil {
			return l, nil
		}
		o.Bridge.Logger.Warn("bridge: connect to the event log", "nats", o.NATS, "err", err)
		if !bo.wait(ctx) {
			return nil, fmt.Errorf("bridge: event log at %s: %w", o.NATS, err)
		}
	}
}

// sinks builds the enabled sinks; checkpoint is set for the running bridge.
func (o *Options) sinks(ctx context.Context, l *eventlog.Log, checkpoint bool) ([]Sink, func(), error) {
	var sinks []Sink
	closers := []func(){}
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, name := range o.Sinks {
		switch name {
		case SinkKafka:
			if err := o.ensureTopics(ctx, false); err != nil {
				closeAll()
				return nil, nil, err
			}
			ks, err := NewKafkaSink(o.Kafka, l.Config().Stream, checkpoint, o.Bridge.Logger)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			closers = append(closers, ks.Close)
			sinks = append(sinks, ks)
		case SinkDynamoDB:
			var ds *DynamoSink
			bo := newBackoff()
			for {
				var err error
				if ds, err = NewDynamoSink(ctx, o.DynamoDB); err == nil {
					break
				}
				if errors.Is(err, ErrMisconfigured) || ctx.Err() != nil {
					closeAll()
					return nil, nil, err
				}
				o.Bridge.Logger.Warn("bridge: DynamoDB; retrying", "err", err)
				bo.wait(ctx)
			}
			sinks = append(sinks, ds)
		}
	}
	return sinks, closeAll, nil
}

// ensureTopics waits until the topic (and with dlq, the dead-letter topic)
// exists, creating it if so configured.
func (o *Options) ensureTopics(ctx context.Context, dlq bool) error {
	kc, err := o.Kafka.withDefaults()
	if err != nil {
		return err
	}
	topics := []string{kc.Topic}
	if dlq {
		topics = append(topics, kc.DLQTopic)
	}
	bo := newBackoff()
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := EnsureTopics(cctx, kc, topics...)
		cancel()
		if err == nil || ctx.Err() != nil || errors.Is(err, ErrMisconfigured) {
			return err
		}
		o.Bridge.Logger.Warn("bridge: Kafka topics", "err", err)
		if !bo.wait(ctx) {
			return err
		}
	}
}

// Run runs the bridge (and the inbound direction, if enabled) until ctx
// ends, then returns nil. It waits for servers that cannot be reached yet;
// it returns an error only for a configuration that cannot work (see
// ErrMisconfigured) or an address it cannot listen on.
func Run(ctx context.Context, o Options) error {
	err := run(ctx, o)
	if ctx.Err() != nil {
		return nil // Stopped while starting: not a failure.
	}
	return err
}

func run(ctx context.Context, o Options) error {
	if err := o.check(); err != nil {
		return err
	}
	log := o.Bridge.Logger
	var ready atomic.Bool
	var running atomic.Pointer[Bridge]
	if o.Addr != "" {
		ln, err := net.Listen("tcp", o.Addr)
		if err != nil {
			return fmt.Errorf("bridge: listen on %s: %w", o.Addr, err)
		}
		if o.OnListen != nil {
			o.OnListen(ln.Addr().String())
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
			if b := running.Load(); !ready.Load() || b != nil && !b.Running() {
				http.Error(w, "starting: connecting to the event log and the sinks", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ready")
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		log.Info("bridge: serving /metrics, /healthz and /readyz", "addr", ln.Addr().String())
	}
	l, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer l.Close()
	if o.Inbound {
		if err := o.ensureTopics(ctx, true); err != nil {
			return err
		}
	}
	sinks, closeSinks, err := o.sinks(ctx, l, true)
	if err != nil {
		return err
	}
	defer closeSinks()

	var wg sync.WaitGroup
	if o.Inbound {
		in, err := NewInbound(l, o.Kafka, log, o.Bridge.Metrics)
		if err != nil {
			return err
		}
		defer in.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = in.Run(ctx)
		}()
	}
	if len(sinks) > 0 {
		b, err := New(l, o.Bridge, sinks...)
		if err != nil {
			return err
		}
		running.Store(b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = b.Run(ctx)
		}()
	}
	ready.Store(true)
	wg.Wait()
	return nil
}

// RunReplay re-mirrors r to the enabled sinks; see Replay.
func RunReplay(ctx context.Context, o Options, r Range, progress func(done, total int64)) (ReplayStats, error) {
	if err := o.check(); err != nil {
		return ReplayStats{}, err
	}
	if len(o.Sinks) == 0 {
		return ReplayStats{}, errors.New("bridge: replay needs a sink")
	}
	l, err := o.connect(ctx)
	if err != nil {
		return ReplayStats{}, err
	}
	defer l.Close()
	sinks, closeSinks, err := o.sinks(ctx, l, false)
	if err != nil {
		return ReplayStats{}, err
	}
	defer closeSinks()
	return Replay(ctx, l, r, o.Bridge.Batch, sinks, o.Bridge.Metrics, o.Bridge.Logger, progress)
}
