package read

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"github.com/palimpsest-editor/palimpsest/internal/traces"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/pgstate"
	"github.com/palimpsest-editor/palimpsest/projections/redisread"
	"github.com/palimpsest-editor/palimpsest/projections/s3snap"
	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/auth/authtest"
)

// paperEditor types a trace as three authors taking turns, every op going
// to the other two replicas too, and keeps the ops for the log.
type paperEditor struct {
	reps [3]*crdt.Doc
	turn int
	ops  []eventlog.Op
}

func (e *paperEditor) record(op crdt.Op, err error) error {
	if err != nil || op.IsZero() {
		return err
	}
	for i, r := range e.reps {
		if i != e.turn%3 {
			if _, err := r.Apply(op); err != nil {
				return err
			}
		}
	}
	e.ops = append(e.ops, eventlog.Op{Site: uint32(op.Site), Counter: op.Counter, Author: fmt.Sprintf("author%d", e.turn%3+1), Payload: crdt.AppendOp(nil, &op)})
	if len(e.ops)%2000 == 0 {
		e.turn++
	}
	return nil
}

func (e *paperEditor) Insert(pos int, text string) error {
	return e.record(e.reps[e.turn%3].Insert(pos, text))
}

func (e *paperEditor) Delete(pos, n int) error {
	return e.record(e.reps[e.turn%3].Delete(pos, n))
}

// paperSetup is the automerge-paper history in a real embedded JetStream,
// projected by the real projector into PostgreSQL (state), MinIO (a
// snapshot every 1,000 ops, all kept) and Redis (read model), plus a small
// document.
type paperSetup struct {
	log      *eventlog.Log
	pg       *pgstate.Backend
	snaps    *s3snap.Store
	rc       *redis.Client
	cache    *redisread.Store
	versions []uint64
	text     string
	verifier *auth.Verifier
	token    string
}

func setupPaper(b *testing.B) *paperSetup {
	ctx := ctxT(b, 20*time.Minute)
	tr, err := traces.Open("automerge-paper")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	ed := &paperEditor{}
	for i := range ed.reps {
		ed.reps[i] = crdt.New(crdt.SiteID(i+1), rand.NewPCG(uint64(i), 1))
	}
	if err := tr.Replay(ed); err != nil {
		b.Fatal(err)
	}
	if ed.reps[0].Text() != tr.EndContent {
		b.Fatal("the replicas do not end in the trace's text")
	}
	b.Logf("automerge-paper: %d ops by 3 authors, %d code points at the end (%v)", len(ed.ops), ed.reps[0].Len(), time.Since(start).Round(time.Millisecond))

	s := &paperSetup{log: startLog(b), text: tr.EndContent}
	start = time.Now()
	for i := 0; i < len(ed.ops); i += 1000 {
		res, err := s.log.Append(ctx, "paper", eventlog.Any, ed.ops[i:min(i+1000, len(ed.ops))]...)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			s.versions = append(s.versions, r.Seq)
		}
	}
	small := newWriter(b, s.log, 1)
	small.edit(ctx, "small", 300)
	b.Logf("appended %d events to JetStream in %v (%.0f events/s)", len(s.versions), time.Since(start).Round(time.Millisecond), float64(len(s.versions))/time.Since(start).Seconds())

	if s.pg, err = pgstate.Open(ctx, harness.SharedPostgres(b).NewDatabase(b)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.pg.Close)
	mc, err := harness.SharedMinIO(b).Client()
	if err != nil {
		b.Fatal(err)
	}
	s.snaps = s3snap.New(mc, harness.SharedMinIO(b).NewBucket(b), "")
	rs := harness.SharedRedis(b)
	s.rc = redis.NewClient(&redis.Options{Addr: rs.Addr(), DB: rs.NewDB(b), PoolSize: 64})
	b.Cleanup(func() { s.rc.Close() })
	s.cache = redisread.New(s.rc, "", time.Hour)

	start = time.Now()
	p, err := projections.New(projections.Config{Log: s.log, State: s.pg, Snapshots: s.snaps, SnapshotEvery: 1000, SnapshotRetain: -1,
		BatchSize: 1000, ReadModel: s.cache, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(pctx) }()
	store, err := s.pg.Live(ctx)
	if err != nil {
		b.Fatal(err)
	}
	last := s.versions[len(s.versions)-1]
	for {
		m, err := store.Load(ctx, []string{"paper", "small"})
		if err != nil {
			b.Fatal(err)
		}
		if m["paper"].Version == last && m["small"].Version > 0 {
			if m["paper"].Text != tr.EndContent {
				b.Fatal("the projected text is not the trace's")
			}
			break
		}
		select {
		case <-ctx.Done():
			b.Fatalf("the projector did not reach version %d (at %d)", last, m["paper"].Version)
		case <-time.After(100 * time.Millisecond):
		}
	}
	stop()
	<-done
	b.Logf("projected into PostgreSQL, MinIO and Redis in %v", time.Since(start).Round(time.Millisecond))

	iss := authtest.EdDSAIssuer(b, "k1")
	if s.verifier, err = auth.NewVerifier(ctx, auth.Config{Keys: []auth.Key{authtest.VerifierKey(b, iss)}}); err != nil {
		b.Fatal(err)
	}
	if s.token, err = iss.Issue("reader", "", auth.Docs{Read: []string{"*"}}, time.Hour); err != nil {
		b.Fatal(err)
	}
	return s
}

// serve runs the HTTP API of a service on s's stores, with the cache or not.
func (s *paperSetup) serve(b *testing.B, cache bool) (*Service, *httptest.Server) {
	cfg := Config{Log: s.log, State: s.pg, Snapshots: s.snaps, Logger: slog.New(slog.DiscardHandler)}
	if cache {
		cfg.Cache = s.cache
	}
	svc, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	h, err := svc.Handler(HTTPConfig{Verifier: s.verifier})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return svc, srv
}

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256}}

func (s *paperSetup) get(b *testing.B, url string) string {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("GET %s: %s", url, resp.Status)
	}
	return resp.Header.Get("X-Palimpsest-Source")
}

// percentiles reports the p50, p99 and max of ds in milliseconds.
func percentiles(b *testing.B, ds []time.Duration, prefix string) {
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), prefix+"p50-ms")
	b.ReportMetric(at(0.99), prefix+"p99-ms")
	b.ReportMetric(float64(ds[len(ds)-1].Microseconds())/1000, prefix+"max-ms")
}

// travels returns how many states svc built from the given base.
func travels(b *testing.B, svc *Service, base string) float64 {
	var m dto.Metric
	if err := svc.metrics.travelSeconds.WithLabelValues(base).(prometheus.Histogram).Write(&m); err != nil {
		b.Fatal(err)
	}
	return float64(m.Histogram.GetSampleCount())
}

// BenchmarkReadPaper measures the read API on the automerge-paper history
// (259,778 ops in a real embedded JetStream, projected by the real
// projector into PostgreSQL, MinIO and Redis):
//
//   - at=random: time travel to uniformly random versions, through the
//     service and through HTTP; p50/p99/max latency. A fresh service
//     (empty caches) for each run: use -benchtime 2000x for a steady state;
//
//   - current/*: current-document reads per second from a load generator
//     (b.RunParallel, 8 goroutines a core) through HTTP, from a cache hit
//     and from PostgreSQL, as ratios to a raw Redis HMGET and a raw
//     PostgreSQL SELECT of the same document with the same load.
//
//     go test ./services/read -run '^$' -bench ReadPaper -benchtime 2000x -timeout 30m
func BenchmarkReadPaper(b *testing.B) {
	s := setupPaper(b)
	seed := uint64(time.Now().UnixNano())
	b.Logf("seed %d", seed)
	for _, via := range []string{"api", "http"} {
		b.Run("at=random/"+via, func(b *testing.B) {
			svc, srv := s.serve(b, true)
			rng := rand.New(rand.NewPCG(seed, 1))
			ctx := context.Background()
			// Two passes of b.N random versions on one fresh process: the
			// first warms its caches (segments, states, events, snapshots),
			// the second is the steady state.
			var cold, warm []time.Duration
			var segBefore float64
			b.ResetTimer()
			for pass := range 2 {
				if pass == 1 {
					segBefore = travels(b, svc, "segment")
				}
				for range b.N {
					v := s.versions[rng.IntN(len(s.versions))]
					start := time.Now()
					if via == "api" {
						if _, err := svc.At(ctx, "paper", v); err != nil {
							b.Fatal(err)
						}
					} else {
						s.get(b, srv.URL+"/v1/documents/paper?at="+strconv.FormatUint(v, 10))
					}
					if pass == 0 {
						cold = append(cold, time.Since(start))
					} else {
						warm = append(warm, time.Since(start))
					}
				}
			}
			b.StopTimer()
			percentiles(b, warm, "")
			percentiles(b, cold, "cold-")
			b.ReportMetric(100*(travels(b, svc, "segment")-segBefore)/float64(b.N), "warm-segment-hits-%")
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
		})
	}
	rates := map[string]float64{}
	parallel := func(b *testing.B, name string, read func() error) {
		b.SetParallelism(8)
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := read(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		rate := float64(b.N) / time.Since(start).Seconds()
		rates[name] = rate
		b.ReportMetric(rate, "reads/s")
	}
	for _, doc := range []string{"paper", "small"} {
		key := "palimpsest:doc:" + doc
		b.Run("current/"+doc+"/redis-raw", func(b *testing.B) {
			parallel(b, doc+"/redis", func() error { return s.rc.HMGet(context.Background(), key, "v", "t").Err() })
		})
		b.Run("current/"+doc+"/http-cache", func(b *testing.B) {
			_, srv := s.serve(b, true)
			url := srv.URL + "/v1/documents/" + doc
			if src := s.get(b, url); src != SourceCache {
				b.Fatalf("source %q, want a cache hit", src)
			}
			parallel(b, doc+"/http-cache", func() error { s.get(b, url); return nil })
			if r := rates[doc+"/redis"]; r > 0 {
				b.ReportMetric(rates[doc+"/http-cache"]/r, "x-raw-redis")
			}
		})
		b.Run("current/"+doc+"/postgres-raw", func(b *testing.B) {
			var text []byte
			var v int64
			parallel(b, doc+"/postgres", func() error {
				return s.pg.Pool().QueryRow(context.Background(), `SELECT version, text_utf8 FROM documents WHERE doc = $1`, doc).Scan(&v, &text)
			})
		})
		b.Run("current/"+doc+"/http-postgres", func(b *testing.B) {
			_, srv := s.serve(b, false)
			url := srv.URL + "/v1/documents/" + doc
			if src := s.get(b, url); src != SourceState {
				b.Fatalf("source %q, want the state store", src)
			}
			parallel(b, doc+"/http-postgres", func() error { s.get(b, url); return nil })
			if r := rates[doc+"/postgres"]; r > 0 {
				b.ReportMetric(rates[doc+"/http-postgres"]/r, "x-raw-postgres")
			}
		})
	}
}
