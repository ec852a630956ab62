package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/gateway"
)

func init() { subcommands = append(subcommands, newServeCmd) }

// serveConfig is everything `serve` can be told; every zero value works.
type serveConfig struct {
	addr, data, natsURL, natsListen string
	jwksFile, jwksURL, publicKey    string
	issuer, audience, devHS256      string
	origins                         []string
	logFormat, logLevel             string
	drainTimeout, devTokenTTL       time.Duration
	pprof                           bool
	projector                       bool
	projectorInterval               time.Duration
	partitions, logMaxBatch         int
	logBatchThreshold               int
	limits                          gateway.Limits
	// ready, when set, is called with the listening address and the dev
	// token (empty with a real identity provider) once serving.
	ready func(addr, devToken string)
}

// envPrefix is the prefix of the environment variables that set serve's
// flags: --max-frame-bytes is PALIMPSEST_MAX_FRAME_BYTES.
const envPrefix = "PALIMPSEST_"

func newServeCmd() *cobra.Command {
	cfg := serveConfig{projector: true, addr: "localhost:8080", logFormat: "text", logLevel: "info", drainTimeout: 30 * time.Second, devTokenTTL: 12 * time.Hour}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the collaborative editing server (embedded NATS JetStream + WebSocket gateway) on one port",
		Long: `serve runs Palimpsest in one process: the event log on an embedded NATS JetStream server
(files under --data) or on --nats, and the WebSocket gateway with /healthz, /readyz and /metrics,
all on --addr.

Without an identity provider (--jwks-file, --jwks-url, --public-key-file or --dev-hs256-secret)
it creates a development signing key under --data, and prints a token that reads and writes every
document, and the WebSocket URL.

Every flag can also be set by an environment variable: PALIMPSEST_ and the flag's name in upper
case with '_' for '-' (PALIMPSEST_ADDR, PALIMPSEST_NATS, PALIMPSEST_MAX_FRAME_BYTES); a flag on the
command line wins. SIGINT or SIGTERM drain: stop accepting, finish the appends in flight (no
acknowledged op is lost), close every client with 1001 so it reconnects, then exit.`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return flagsFromEnv(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.addr, "addr", cfg.addr, "host:port to serve HTTP and WebSocket on")
	f.StringVar(&cfg.data, "data", "", "directory of the embedded stores and the dev key (default: a per-user data directory)")
	f.StringVar(&cfg.natsURL, "nats", "", "URL(s) of an external NATS server or cluster; empty runs an embedded one")
	f.StringVar(&cfg.natsListen, "nats-listen", "", "host:port where the embedded NATS server also accepts clients (default: in-process only)")
	f.IntVar(&cfg.partitions, "partitions", 0, "partitions of a new event stream (default 16; fixed once created)")
	f.IntVar(&cfg.logMaxBatch, "log-max-batch", 0, "most ops in one atomic JetStream batch, across documents (default 256)")
	f.IntVar(&cfg.logBatchThreshold, "log-batch-threshold", 0, "fewest ops waiting for the log that are appended as one atomic batch across documents; fewer go one batch at a time (default 8)")
	f.StringVar(&cfg.jwksFile, "jwks-file", "", "JWK Set file of the keys that sign tokens (EdDSA, RS256)")
	f.StringVar(&cfg.jwksURL, "jwks-url", "", "JWK Set URL of the keys that sign tokens, refreshed periodically")
	f.StringVar(&cfg.publicKey, "public-key-file", "", "PEM file of the public key(s) that sign tokens")
	f.StringVar(&cfg.issuer, "issuer", "", "required iss of tokens")
	f.StringVar(&cfg.audience, "audience", "", "required aud of tokens")
	f.StringVar(&cfg.devHS256, "dev-hs256-secret", "", "DEVELOPMENT ONLY: accept HS256 tokens signed with this secret (32+ bytes)")
	f.StringSliceVar(&cfg.origins, "origins", nil, "allowed WebSocket origins, comma-separated ('*' any; default same origin)")
	f.DurationVar(&cfg.devTokenTTL, "dev-token-ttl", cfg.devTokenTTL, "lifetime of the printed dev token")
	f.StringVar(&cfg.logFormat, "log-format", cfg.logFormat, "log format: text or json")
	f.StringVar(&cfg.logLevel, "log-level", cfg.logLevel, "log level: debug, info, warn or error")
	f.BoolVar(&cfg.projector, "projector", cfg.projector, "run the in-process projector on the embedded stores (false: the documents' state and snapshots are not kept; for measuring the gateway alone)")
	f.DurationVar(&cfg.projectorInterval, "projector-commit-interval", 0, "how long the in-process projector collects events before it folds and commits them (default 250ms)")
	f.BoolVar(&cfg.pprof, "pprof", false, "serve Go's profiles under /debug/pprof/ (no authentication: development only)")
	f.DurationVar(&cfg.drainTimeout, "drain-timeout", cfg.drainTimeout, "how long a shutdown waits for clients and appends in flight")
	l := &cfg.limits
	f.IntVar(&l.MaxFrameBytes, "max-frame-bytes", 0, "largest WebSocket frame a client may send (default 1 MiB)")
	f.IntVar(&l.MaxOpsPerBatch, "max-batch-ops", 0, "most ops in one batch (default 256)")
	f.IntVar(&l.MaxOpBytes, "max-op-bytes", 0, "largest encoded op (default 64 KiB)")
	f.Int64Var(&l.MaxDocumentChars, "max-document-chars", 0, "longest document, in code points (default 4 Mi)")
	f.Float64Var(&l.OpsPerSecond, "rate-ops", 0, "ops per second per connection (default 500)")
	f.IntVar(&l.OpsBurst, "rate-ops-burst", 0, "op burst per connection (default 2000)")
	f.Float64Var(&l.FramesPerSecond, "rate-frames", 0, "frames per second per connection (default 100)")
	f.IntVar(&l.FramesBurst, "rate-frames-burst", 0, "frame burst per connection (default 400)")
	f.IntVar(&l.SendQueue, "send-queue", 0, "frames queued for a slow client before it is dropped (default 4096)")
	return cmd
}

// flagsFromEnv sets every flag not given on the command line from its
// PALIMPSEST_ environment variable.
func flagsFromEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

// defaultDataDir is the per-user data directory: $XDG_DATA_HOME/palimpsest,
// ~/.local/share/palimpsest on Linux, the user config dir elsewhere.
func defaultDataDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "palimpsest"), nil
	}
	if runtime.GOOS == "linux" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(home, ".local", "share", "palimpsest"), nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "palimpsest"), nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// runServe serves until ctx ends, then drains and returns.
func runServe(ctx context.Context, cfg serveConfig, stdout, stderr io.Writer) error {
	log, err := newLogger(stderr, cfg.logFormat, cfg.logLevel)
	if err != nil {
		return err
	}
	if cfg.data == "" {
		if cfg.data, err = defaultDataDir(); err != nil {
			return fmt.Errorf("no --data and no per-user data directory: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.data, 0o700); err != nil {
		return fmt.Errorf("--data %s: %w", cfg.data, err)
	}
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	// The event log: embedded JetStream, or an external NATS.
	var srv *eventlog.Server
	var nc *nats.Conn
	if cfg.natsURL != "" {
		nc, err = nats.Connect(cfg.natsURL, nats.Name("palimpsest serve"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			return fmt.Errorf("--nats %s: %w", cfg.natsURL, err)
		}
	} else {
		// The embedded server's notices (its banner) only at debug level.
		natsLevel := "warn"
		if cfg.logLevel == "debug" {
			natsLevel = "debug"
		}
		natsLog, _ := newLogger(stderr, cfg.logFormat, natsLevel)
		sc := eventlog.ServerConfig{DataDir: filepath.Join(cfg.data, "jetstream"), DontListen: cfg.natsListen == "", Logger: natsLog.With("component", "nats")}
		if cfg.natsListen != "" {
			host, port, err := net.SplitHostPort(cfg.natsListen)
			if err != nil {
				return fmt.Errorf("--nats-listen %q: %w", cfg.natsListen, err)
			}
			sc.Host = host
			if _, err := fmt.Sscan(port, &sc.Port); err != nil {
				return fmt.Errorf("--nats-listen %q: bad port", cfg.natsListen)
			}
		}
		if srv, err = eventlog.StartServer(sc); err != nil {
			return err
		}
		defer srv.Shutdown()
		if nc, err = srv.Connect(nats.Name("palimpsest serve")); err != nil {
			return err
		}
	}
	defer nc.Close()
	// MaxBatch also bounds the gateway's cross-document group commits
	// (docs/adr/0004).
	elog, err := eventlog.Open(startCtx, nc, eventlog.Config{Partitions: cfg.partitions, MaxBatch: cfg.logMaxBatch, Logger: log.With("component", "eventlog")})
	if err != nil {
		return err
	}
	logClosed := false
	defer func() {
		if !logClosed {
			_ = elog.Close()
		}
	}()
	sites, err := elog.OpenSites(startCtx, "")
	if err != nil {
		return err
	}

	// Who may connect.
	acfg := auth.Config{JWKSFile: cfg.jwksFile, JWKSURL: cfg.jwksURL, PublicKeyFile: cfg.publicKey,
		Issuer: cfg.issuer, Audience: cfg.audience, Logger: log.With("component", "auth")}
	if cfg.devHS256 != "" {
		acfg.DevHS256Secret = []byte(cfg.devHS256)
		log.Warn("HS256 tokens are accepted (--dev-hs256-secret): development only")
	}
	devToken := ""
	if cfg.jwksFile == "" && cfg.jwksURL == "" && cfg.publicKey == "" && cfg.devHS256 == "" {
		key, created, err := auth.LoadOrCreateDevKey(cfg.data)
		if err != nil {
			return err
		}
		acfg.Keys = []auth.Key{key.VerifierKey()}
		if devToken, err = auth.IssueDevToken(key, "dev", "Developer", auth.Docs{Write: []string{"*"}}, cfg.devTokenTTL); err != nil {
			return err
		}
		// Read API processes of this log accept the development tokens too.
		if err := publishDevKey(startCtx, elog, key); err != nil {
			return err
		}
		log.Info("no identity provider configured: using the development key", "file", filepath.Join(cfg.data, auth.DevKeyFile), "created", created)
	}
	verifier, err := auth.NewVerifier(startCtx, acfg)
	if err != nil {
		return err
	}
	defer verifier.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	gw, err := gateway.New(gateway.Config{Log: elog, NATS: nc, Sites: sites, Verifier: verifier, Origins: cfg.origins,
		Limits: cfg.limits, BatchThreshold: cfg.logBatchThreshold, Registerer: reg, Logger: log.With("component", "gateway")})
	if err != nil {
		return err
	}

	var draining atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("/v1/ws", gw)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if draining.Load() || !nc.IsConnected() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	stopAll := func() {}
	if cfg.natsURL == "" {
		if stopAll, err = mountAllInOne(startCtx, mux, elog, verifier, reg, log, cfg.projector, cfg.projectorInterval); err != nil {
			return err
		}
		defer stopAll()
	}
	if cfg.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", cfg.addr, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	addr := ln.Addr().String()
	log.Info("serving", "addr", addr, "data", cfg.data, "nats", orDefault(cfg.natsURL, "embedded"), "websocket", "ws://"+addr+"/v1/ws")
	if devToken != "" {
		fmt.Fprintf(stdout, "Palimpsest is serving on http://%s\n  WebSocket: ws://%s/v1/ws (subprotocol %s)\n  dev token (reads and writes every document, for %s):\n%s\n",
			addr, addr, schemas.Subprotocol, cfg.devTokenTTL, devToken)
	}
	if cfg.ready != nil {
		cfg.ready(addr, devToken)
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	}
	// Drain: not ready, no new connections, in-flight appends acknowledged,
	// every client told to reconnect (1001), then the log and NATS.
	log.Info("draining", "timeout", cfg.drainTimeout)
	draining.Store(true)
	dctx, dcancel := context.WithTimeout(context.Background(), cfg.drainTimeout)
	defer dcancel()
	_ = hs.Shutdown(dctx) // Hijacked WebSocket connections are the gateway's.
	if err := gw.Drain(dctx); err != nil {
		log.Warn("drain did not finish", "err", err, "connections", gw.Connections())
	}
	stopAll() // The projector, before the log it reads.
	logClosed = true
	if err := elog.Close(); err != nil {
		log.Warn("close event log", "err", err)
	}
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		log.Warn("drain NATS connection", "err", err)
	}
	log.Info("stopped")
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
