package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/palimpsest-editor/palimpsest/projections"
)

func init() { subcommands = append(subcommands, newProjectorCmd) }

type projectorConfig struct {
	projectionFlags
	metricsAddr      string
	batch            int
	commitInterval   time.Duration
	leaseTTL         time.Duration
	snapshotEvery    int
	snapshotInterval time.Duration
	snapshotRetain   int
	cacheDocs        int
	// ready, when set, is called with the metrics address once running.
	ready func(metricsAddr string)
}

func newProjectorCmd() *cobra.Command {
	cfg := projectorConfig{metricsAddr: "localhost:9464"}
	cmd := &cobra.Command{
		Use:   "projector",
		Short: "Fold the event log into the state projection, snapshots and the read model",
		Long: `projector runs the synchronization service: durable JetStream consumers, one per partition,
fetch events in batches, fold them into each document's CRDT state, and commit the states with the
partition's checkpoint in one transaction before acknowledging the batch. Snapshots are written
every --snapshot-every ops or --snapshot-interval per document, and the read model is upserted
after each commit. Poison events go to the dead-letter stream and the partition goes on.

Run as many projector processes as you like: they share the partitions through leases in a
JetStream KV bucket (each partition folded by one process at a time) and take over the
partitions of one that stops or dies.

Stores: --postgres (else a JetStream KV bucket), --s3 (else a JetStream Object Store), --redis
(else in-process), --nats (else an embedded server under --data). Every flag can be set as
PALIMPSEST_<FLAG> (PALIMPSEST_POSTGRES, PALIMPSEST_REDIS, ...). Prometheus metrics are served on
--metrics-addr at /metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := cfg.fromEnvAndLogger(cmd.Flags())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runProjector(ctx, cfg, logger)
		},
	}
	f := cmd.Flags()
	cfg.register(f)
	f.StringVar(&cfg.metricsAddr, "metrics-addr", cfg.metricsAddr, "host:port of the Prometheus /metrics endpoint (empty: none)")
	f.IntVar(&cfg.batch, "batch", 0, "most events fetched and committed at once (default 16384)")
	f.DurationVar(&cfg.commitInterval, "commit-interval", 0, "how long a partition collects events before it folds and commits them (default 250ms)")
	f.DurationVar(&cfg.leaseTTL, "lease-ttl", 0, "how long a dead process's partitions stay unowned (default 10s)")
	f.IntVar(&cfg.snapshotEvery, "snapshot-every", 0, "ops of a document between snapshots (default 1000)")
	f.DurationVar(&cfg.snapshotInterval, "snapshot-interval", 0, "longest time between a changed document's snapshots (default 1m)")
	f.IntVar(&cfg.snapshotRetain, "snapshot-retain", 0, "newest snapshots kept per document (default 16; -1: all)")
	f.IntVar(&cfg.cacheDocs, "cache-docs", 0, "documents kept in memory between batches (default 4096)")
	return cmd
}

// runProjector runs the projector until ctx ends.
func runProjector(ctx context.Context, cfg projectorConfig, logger *slog.Logger) error {
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b, err := cfg.open(octx, logger, true)
	if err != nil {
		return err
	}
	defer b.close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := projections.NewMetrics(reg)
	addr := ""
	if cfg.metricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr %s: %w", cfg.metricsAddr, err)
		}
		addr = ln.Addr().String()
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = hs.Serve(ln) }()
		defer hs.Close()
	}
	p, err := projections.New(projections.Config{
		Log: b.log, State: b.state, Snapshots: b.snaps, ReadModel: b.read,
		BatchSize: cfg.batch, CommitInterval: cfg.commitInterval, LeaseTTL: cfg.leaseTTL, SnapshotEvery: cfg.snapshotEvery,
		SnapshotInterval: cfg.snapshotInterval, SnapshotRetain: cfg.snapshotRetain, CacheDocs: cfg.cacheDocs,
		Metrics: metrics, Logger: logger,
	})
	if err != nil {
		return err
	}
	logger.Info("projector running", "metrics", addr, "partitions", b.log.Config().Partitions)
	if cfg.ready != nil {
		cfg.ready(addr)
	}
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
