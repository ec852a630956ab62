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
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/read"
)

func init() { subcommands = append(subcommands, newReadCmd) }

// readConfig is everything `read` can be told; every zero value works.
type readConfig struct {
	projectionFlags
	addr                         string
	jwksFile, jwksURL, publicKey string
	issuer, audience, devHS256   string
	drainTimeout                 time.Duration
	stateCacheMiB                int
	// ready, when set, is called with the listening address once serving.
	ready func(addr string)
}

func newReadCmd() *cobra.Command {
	cfg := readConfig{addr: "localhost:8081", drainTimeout: 10 * time.Second}
	cmd := &cobra.Command{
		Use:   "read",
		Short: "Run the read API: documents now and as of any version, history, diff, blame (HTTP + JSON)",
		Long: `read serves the read API on --addr:

  GET /v1/documents/{id}              the current text (Redis, then the state store, then the log)
  GET /v1/documents/{id}?at=V|TIME    the text right after version V, or at an RFC 3339 instant
  GET /v1/documents/{id}/history      versions with author, time and a summary (paginated)
  GET /v1/documents/{id}/diff?from=&to=   inserted and deleted runs between two versions
  GET /v1/documents/{id}/blame[?at=]  who wrote each run of the text, and when
  GET /openapi.json                   the OpenAPI document of all of the above
  /healthz, /readyz, /metrics         liveness, readiness (log and state store answer), Prometheus

Stores, as the projector's: --nats (else an embedded server under --data), --postgres (else the
JetStream KV state), --s3 (else the JetStream Object Store snapshots), --redis (the read model
the projector keeps; without it there is no cache). Requests need the same JWT as the gateway
(cookie palimpsest_token or Authorization: Bearer) with a read or write claim on the document;
keys from --jwks-url, --jwks-file or --public-key-file. Without any, read trusts the development
key in --data and the development keys that serve publishes on NATS (development only).

Every flag can also be set as PALIMPSEST_<FLAG> (PALIMPSEST_ADDR, PALIMPSEST_NATS, ...); a flag on
the command line wins. SIGINT or SIGTERM: not ready, finish requests in flight, exit.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := cfg.fromEnvAndLogger(cmd.Flags())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runRead(ctx, cfg, logger)
		},
	}
	f := cmd.Flags()
	cfg.register(f)
	f.StringVar(&cfg.addr, "addr", cfg.addr, "host:port to serve the read API on")
	f.StringVar(&cfg.jwksFile, "jwks-file", "", "JWK Set file of the keys that sign tokens (EdDSA, RS256)")
	f.StringVar(&cfg.jwksURL, "jwks-url", "", "JWK Set URL of the keys that sign tokens, refreshed periodically")
	f.StringVar(&cfg.publicKey, "public-key-file", "", "PEM file of the public key(s) that sign tokens")
	f.StringVar(&cfg.issuer, "issuer", "", "required iss of tokens")
	f.StringVar(&cfg.audience, "audience", "", "required aud of tokens")
	f.StringVar(&cfg.devHS256, "dev-hs256-secret", "", "DEVELOPMENT ONLY: accept HS256 tokens signed with this secret (32+ bytes)")
	f.DurationVar(&cfg.drainTimeout, "drain-timeout", cfg.drainTimeout, "how long a shutdown waits for requests in flight")
	f.IntVar(&cfg.stateCacheMiB, "state-cache-mib", 0, "rough memory for decoded past states (diff, blame, time travel), in MiB (default 300)")
	return cmd
}

// readVerifier builds the token verifier the flags ask for.
func readVerifier(ctx context.Context, cfg readConfig, b *projectionBackends, logger *slog.Logger) (read.TokenVerifier, func(), error) {
	acfg := auth.Config{JWKSFile: cfg.jwksFile, JWKSURL: cfg.jwksURL, PublicKeyFile: cfg.publicKey,
		Issuer: cfg.issuer, Audience: cfg.audience, Logger: logger.With("component", "auth")}
	if cfg.devHS256 != "" {
		acfg.DevHS256Secret = []byte(cfg.devHS256)
		logger.Warn("HS256 tokens are accepted (--dev-hs256-secret): development only")
	}
	if cfg.jwksFile != "" || cfg.jwksURL != "" || cfg.publicKey != "" || cfg.devHS256 != "" {
		v, err := auth.NewVerifier(ctx, acfg)
		if err != nil {
			return nil, nil, err
		}
		return v, v.Close, nil
	}
	// Development: the dev key of --data, when there is one, and the published ones.
	var local []auth.Key
	data := cfg.data
	if data == "" {
		data, _ = defaultDataDir()
	}
	if data != "" {
		if _, err := os.Stat(filepath.Join(data, auth.DevKeyFile)); err == nil {
			key, _, err := auth.LoadOrCreateDevKey(data)
			if err != nil {
				return nil, nil, err
			}
			local = append(local, key.VerifierKey())
		}
	}
	logger.Warn("no identity provider configured: trusting development keys only", "data", data, "published_in", devKeysBucket)
	v, err := newDevVerifier(ctx, b.log, local, acfg, logger.With("component", "auth"))
	if err != nil {
		return nil, nil, err
	}
	return v, v.Close, nil
}

// runRead serves the read API until ctx ends, then drains and returns.
func runRead(ctx context.Context, cfg readConfig, logger *slog.Logger) error {
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	b, err := cfg.open(startCtx, logger, true)
	if err != nil {
		return err
	}
	defer b.close()
	scfg := read.Config{Log: b.log, State: b.state, Snapshots: b.snaps, Logger: logger.With("component", "read")}
	if cfg.redis != "" {
		scfg.Cache = b.read // Without Redis there is no cache: nobody would keep one up to date.
	}
	if cfg.stateCacheMiB > 0 {
		scfg.StateCacheElements = cfg.stateCacheMiB << 20 / 150 // About 150 bytes a decoded code point.
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	scfg.Registerer = reg
	svc, err := read.New(scfg)
	if err != nil {
		return err
	}
	verifier, closeVerifier, err := readVerifier(startCtx, cfg, b, logger)
	if err != nil {
		return err
	}
	defer closeVerifier()
	api, err := svc.Handler(read.HTTPConfig{Verifier: verifier})
	if err != nil {
		return err
	}
	var draining atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		if err := svc.Ready(rctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", cfg.addr, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	addr := ln.Addr().String()
	logger.Info("read API serving", "addr", addr, "nats", orDefault(cfg.natsURL, "embedded"),
		"postgres", cfg.postgres != "", "s3", cfg.s3 != "", "redis", cfg.redis != "")
	if cfg.ready != nil {
		cfg.ready(addr)
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	}
	logger.Info("draining", "timeout", cfg.drainTimeout)
	draining.Store(true)
	dctx, dcancel := context.WithTimeout(context.Background(), cfg.drainTimeout)
	defer dcancel()
	if err := hs.Shutdown(dctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("shutdown", "err", err)
	}
	logger.Info("stopped")
	return nil
}
