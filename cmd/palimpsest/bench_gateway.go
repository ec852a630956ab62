package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/palimpsest-editor/palimpsest/client"
	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/services/auth"
)

func init() { benchSubcommands = append(benchSubcommands, newBenchGatewayCmd) }

type benchGatewayConfig struct {
	url, token      string
	clients, docs   int
	rate            float64
	duration        time.Duration
	warmup          time.Duration
	sweep           bool
	sweepStep       int
	sweepMaxClients int
	limitP99        time.Duration
	serverFlags     []string
}

func newBenchGatewayCmd() *cobra.Command {
	cfg := benchGatewayConfig{clients: 200, docs: 20, rate: 10, duration: 20 * time.Second, warmup: 3 * time.Second,
		sweepStep: 200, sweepMaxClients: 2000, limitP99: 50 * time.Millisecond}
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Load the WebSocket gateway: N clients on M documents typing at a set rate",
		Long: `gateway starts 'palimpsest serve' as a separate process on a fresh data directory (or uses
--url and --token), connects --clients Go clients spread over --docs documents, and lets each
type --rate ops a second (one code point each, about one in ten a delete) for --duration after a
--warmup. It prints:

  ack latency        from the local edit to the client's Ack (the op is durable in JetStream)
  broadcast latency  from the local edit to its arrival at every other client of the document
  ops/s              ops acknowledged per second during the measurement
  server CPU per op  the server process's own CPU seconds (process_cpu_seconds_total on its
                     /metrics, user + system, read before and after) over the ops it appended

with p50, p99 and max, and the goals: broadcast p99 under 15 ms and max under 50 ms, at most 40 µs
of server CPU per op. --sweep then adds --sweep-step clients at a time (10 per document) until
the broadcast p99 reaches --limit-p99, and reports the largest load that stayed under it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchGateway(cmd.Context(), cmd.OutOrStdout(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.url, "url", "", "WebSocket URL of a running gateway (default: start 'palimpsest serve')")
	f.StringVar(&cfg.token, "token", os.Getenv("PALIMPSEST_TOKEN"), "token for --url, writing every bench-* document (env PALIMPSEST_TOKEN)")
	f.IntVar(&cfg.clients, "clients", cfg.clients, "clients")
	f.IntVar(&cfg.docs, "docs", cfg.docs, "documents the clients are spread over")
	f.Float64Var(&cfg.rate, "rate", cfg.rate, "ops per second per client")
	f.DurationVar(&cfg.duration, "duration", cfg.duration, "measurement time")
	f.DurationVar(&cfg.warmup, "warmup", cfg.warmup, "typing before the measurement starts")
	f.BoolVar(&cfg.sweep, "sweep", false, "after the run, add clients until the broadcast p99 reaches --limit-p99")
	f.IntVar(&cfg.sweepStep, "sweep-step", cfg.sweepStep, "clients added per sweep step")
	f.IntVar(&cfg.sweepMaxClients, "sweep-max-clients", cfg.sweepMaxClients, "most clients a sweep tries")
	f.DurationVar(&cfg.limitP99, "limit-p99", cfg.limitP99, "broadcast p99 bound of the sweep")
	f.StringSliceVar(&cfg.serverFlags, "server-flag", nil, "extra flag for the 'palimpsest serve' the bench starts (repeatable), like --server-flag=--log-max-batch=1")
	return cmd
}

// benchServer is the gateway under load: its WebSocket URL, its /metrics
// URL and a token.
type benchServer struct {
	wsURL, metricsURL, token string
	stop                     func()
	pid                      int
}

func startBenchServer(ctx context.Context, extra []string) (*benchServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "palimpsest-bench-*")
	if err != nil {
		return nil, err
	}
	key, _, err := auth.LoadOrCreateDevKey(dir)
	if err != nil {
		return nil, err
	}
	tok, err := auth.IssueDevToken(key, "bench", "Bench", auth.Docs{Write: []string{"*"}}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append([]string{"serve", "--addr", addr, "--data", dir, "--log-level", "warn",
		"--rate-ops", "100000", "--rate-ops-burst", "100000", "--rate-frames", "100000", "--rate-frames-burst", "100000"}, extra...)
	cmd := exec.Command(exe, args...)
	cmd.Stdout = io.Discard
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	s := &benchServer{wsURL: "ws://" + addr + "/v1/ws", metricsURL: "http://" + addr + "/metrics", token: tok, stop: stop, pid: cmd.Process.Pid}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, fmt.Errorf("palimpsest serve on %s did not become ready", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape reads the gauges and counters named from a /metrics page.
func scrape(u string, names ...string) (map[string]float64, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("%s has no metric %s", u, n)
		}
	}
	return out, sc.Err()
}

func runBenchGateway(ctx context.Context, w io.Writer, cfg benchGatewayConfig) error {
	if cfg.clients < 1 || cfg.docs < 1 || cfg.rate <= 0 || cfg.duration <= 0 {
		return errors.New("--clients, --docs, --rate and --duration must be positive")
	}
	srv := &benchServer{wsURL: cfg.url, token: cfg.token}
	if cfg.url == "" {
		s, err := startBenchServer(ctx, cfg.serverFlags)
		if err != nil {
			return err
		}
		defer s.stop()
		srv = s
		fmt.Fprintf(w, "server: palimpsest serve, pid %d, %s (embedded JetStream, fresh data dir)\n", s.pid, s.wsURL)
	} else {
		if cfg.token == "" {
			return errors.New("--url needs --token (or PALIMPSEST_TOKEN)")
		}
		if u, err := url.Parse(cfg.url); err == nil {
			scheme := "http"
			if u.Scheme == "wss" {
				scheme = "https"
			}
			srv.metricsURL = scheme + "://" + u.Host + "/metrics"
		}
		fmt.Fprintf(w, "server: %s\n", cfg.url)
	}
	perDoc := max(1, cfg.clients/cfg.docs)
	res, err := benchRun(ctx, srv, cfg.clients, cfg.docs, cfg.rate, cfg.warmup, cfg.duration, "bench")
	if err != nil {
		return err
	}
	res.print(w, cfg)
	if !cfg.sweep {
		return nil
	}
	fmt.Fprintf(w, "\nsweep: %d clients a document, %.0f ops/s each, until the broadcast p99 reaches %v\n", perDoc, cfg.rate, cfg.limitP99)
	best := 0
	if res.bcast.p(0.99) < cfg.limitP99 {
		best = cfg.clients
	}
	for n := cfg.clients + cfg.sweepStep; n <= cfg.sweepMaxClients; n += cfg.sweepStep {
		docs := max(1, n/perDoc)
		r, err := benchRun(ctx, srv, n, docs, cfg.rate, cfg.warmup, cfg.duration/2, fmt.Sprintf("sweep%d", n))
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  %5d clients on %3d docs: %7.0f ops/s, broadcast p50 %s p99 %s max %s, ack p99 %s, CPU %s/op\n",
			n, docs, r.opsPerSec(), ms(r.bcast.p(0.5)), ms(r.bcast.p(0.99)), ms(r.bcast.max()), ms(r.ack.p(0.99)), us(r.cpuPerOp))
		if r.bcast.p(0.99) >= cfg.limitP99 || r.errors > 0 {
			break
		}
		best = n
	}
	if best > 0 {
		fmt.Fprintf(w, "largest load with broadcast p99 under %v: %d clients, %.0f ops/s offered\n", cfg.limitP99, best, float64(best)*cfg.rate)
	} else {
		fmt.Fprintf(w, "no load stayed under %v\n", cfg.limitP99)
	}
	return nil
}

// samples is a set of latencies.
type samples struct {
	mu     sync.Mutex
	d      []time.Duration
	frozen bool
}

func (s *samples) add(d time.Duration) {
	s.mu.Lock()
	if !s.frozen {
		s.d = append(s.d, d)
	}
	s.mu.Unlock()
}

func (s *samples) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.d)
}

// freeze sorts the samples and ignores any added later, so a callback
// running late cannot append to (and unsort) what is being read.
func (s *samples) freeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = true
	slices.Sort(s.d)
}

func (s *samples) p(q float64) time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	return s.d[min(len(s.d)-1, int(q*float64(len(s.d))))]
}

func (s *samples) max() time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	return s.d[len(s.d)-1]
}

type benchResult struct {
	clients, docs int
	ack, bcast    samples
	acked         int64
	window        time.Duration
	cpu           float64 // server CPU seconds in the window; <0 unknown
	serverOps     float64
	cpuPerOp      time.Duration
	errors        int64
}

func (r *benchResult) opsPerSec() float64 { return float64(r.acked) / r.window.Seconds() }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }

func (r *benchResult) print(w io.Writer, cfg benchGatewayConfig) {
	fmt.Fprintf(w, "load: %d clients on %d documents, %.0f ops/s each (%.0f offered), %v measured after %v warm-up\n",
		r.clients, r.docs, cfg.rate, float64(r.clients)*cfg.rate, r.window.Round(time.Millisecond), cfg.warmup)
	fmt.Fprintf(w, "ops acknowledged: %d (%.0f ops/s sustained), client errors: %d\n", r.acked, r.opsPerSec(), r.errors)
	fmt.Fprintf(w, "ack latency:       p50 %s  p99 %s  max %s  (%d samples)\n", ms(r.ack.p(0.5)), ms(r.ack.p(0.99)), ms(r.ack.max()), len(r.ack.d))
	fmt.Fprintf(w, "broadcast latency: p50 %s  p99 %s  max %s  (%d samples, sender to every other client)\n", ms(r.bcast.p(0.5)), ms(r.bcast.p(0.99)), ms(r.bcast.max()), len(r.bcast.d))
	if r.cpu >= 0 {
		fmt.Fprintf(w, "server CPU: %.3f s over %.0f appended ops = %s/op (process_cpu_seconds_total, user+system)\n", r.cpu, r.serverOps, us(r.cpuPerOp))
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(w, "goals: broadcast p99 < 15 ms %s; broadcast max < 50 ms %s", verdict(r.bcast.p(0.99) < 15*time.Millisecond), verdict(r.bcast.max() < 50*time.Millisecond))
	if r.cpu >= 0 {
		fmt.Fprintf(w, "; server CPU ≤ 40 µs/op %s", verdict(r.cpuPerOp <= 40*time.Microsecond))
	}
	fmt.Fprintln(w)
}

// benchRun runs one load: clients spread over docs, each typing rate ops a
// second; latencies are kept for ops made inside the measurement window.
func benchRun(ctx context.Context, srv *benchServer, clients, docs int, rate float64, warmup, window time.Duration, prefix string) (*benchResult, error) {
	res := &benchResult{clients: clients, docs: docs, cpu: -1}
	type docSends struct {
		mu   sync.Mutex
		sent map[crdt.Dot]time.Time
	}
	sends := make([]*docSends, docs)
	for i := range sends {
		sends[i] = &docSends{sent: map[crdt.Dot]time.Time{}}
	}
	var measuring atomic.Bool
	var measureFrom, measureTo atomic.Int64 // Unix nanoseconds of the window's bounds.
	inWindow := func(t time.Time) bool {
		n := t.UnixNano()
		return measuring.Load() && n >= measureFrom.Load() && (measureTo.Load() == 0 || n < measureTo.Load())
	}
	cs := make([]*client.Client, clients)
	var errs atomic.Int64
	for i := range clients {
		d := i % docs
		ds := sends[d]
		c, err := client.Open(client.Config{URL: srv.wsURL, Doc: fmt.Sprintf("%s-%d", prefix, d), Token: client.StaticToken(srv.token),
			MaxBackoff: time.Second,
			OnEvent: func(ev client.Event) {
				if ev.Local {
					return
				}
				now := time.Now()
				ds.mu.Lock()
				t0, ok := ds.sent[crdt.Dot{Site: crdt.SiteID(ev.Site), Counter: ev.Counter}]
				ds.mu.Unlock()
				if ok && inWindow(t0) {
					res.bcast.add(now.Sub(t0))
				}
			},
			OnAck: func(dots []crdt.Dot) {
				now := time.Now()
				ds.mu.Lock()
				for _, dot := range dots {
					if t0, ok := ds.sent[dot]; ok && inWindow(t0) {
						res.ack.add(now.Sub(t0))
						atomic.AddInt64(&res.acked, 1)
					}
				}
				ds.mu.Unlock()
			},
			OnState: func(up bool, err error) {
				if !up {
					errs.Add(1)
				}
			},
		})
		if err != nil {
			return nil, err
		}
		cs[i] = c
	}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	for _, c := range cs {
		if err := c.WaitConnected(cctx); err != nil {
			cancel()
			return nil, fmt.Errorf("connecting %d clients: %w", clients, err)
		}
	}
	cancel()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	for i, c := range cs {
		ds := sends[i%docs]
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 99))
			select { // Spread the clients' ticks over one interval.
			case <-time.After(time.Duration(rng.Int64N(int64(interval)))):
			case <-stop:
				return
			}
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				l := c.Len()
				ds.mu.Lock() // Held across the edit, so a fast echo finds the send time.
				now := time.Now()
				var dot crdt.Dot
				var err error
				if l > 20 && rng.IntN(10) == 0 {
					dot, err = c.Delete(rng.IntN(l), 1)
				} else {
					dot, err = c.Insert(rng.IntN(l+1), string(rune('a'+rng.IntN(26))))
				}
				if err == nil {
					ds.sent[dot] = now
				}
				ds.mu.Unlock()
				select {
				case <-t.C:
				case <-stop:
					return
				}
			}
		}()
	}
	select {
	case <-time.After(warmup):
	case <-ctx.Done():
	}
	var before map[string]float64
	if srv.metricsURL != "" {
		before, _ = scrape(srv.metricsURL, "process_cpu_seconds_total", "palimpsest_gateway_ops_appended_total")
	}
	start := time.Now()
	measureFrom.Store(start.UnixNano())
	measuring.Store(true)
	select {
	case <-time.After(window):
	case <-ctx.Done():
	}
	end := time.Now()
	measureTo.Store(end.UnixNano())
	// Let the window's last ops arrive everywhere before stopping the clock.
	close(stop)
	wg.Wait()
	settle, cancelSettle := context.WithTimeout(ctx, 10*time.Second)
	for _, c := range cs {
		_ = c.WaitSynced(settle)
	}
	cancelSettle()
	// A client is synced when its own ops are acknowledged; the others'
	// echoes of the window's last ops may still be on their way. Wait until
	// no broadcast sample has arrived for 200 ms (at most 10 s more).
	for n, quiet, deadline := res.bcast.len(), 0, time.Now().Add(10*time.Second); quiet < 2 && time.Now().Before(deadline); {
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			quiet = 2
		}
		if m := res.bcast.len(); m == n {
			quiet++
		} else {
			n, quiet = m, 0
		}
	}
	if before != nil {
		if after, err := scrape(srv.metricsURL, "process_cpu_seconds_total", "palimpsest_gateway_ops_appended_total"); err == nil {
			// The CPU of the window's ops, counted to when they had all
			// settled; the ops appended in that span too.
			res.cpu = after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]
			res.serverOps = after["palimpsest_gateway_ops_appended_total"] - before["palimpsest_gateway_ops_appended_total"]
			if res.serverOps > 0 {
				res.cpuPerOp = time.Duration(res.cpu / res.serverOps * 1e9)
			}
		}
	}
	res.window = end.Sub(start)
	res.errors = errs.Load()
	res.ack.freeze()
	res.bcast.freeze()
	return res, nil
}
