package read

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/pgstate"
	"github.com/palimpsest-editor/palimpsest/projections/redisread"
)

// backends are a real PostgreSQL state store and a real Redis read model
// beside an embedded JetStream log.
type backends struct {
	log   *eventlog.Log
	pg    *pgstate.Backend
	rc    *redis.Client
	cache *redisread.Store
}

func newBackends(t *testing.T, rs *harness.Redis, db int) *backends {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	pg, err := pgstate.Open(ctx, harness.SharedPostgres(t).NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr(), DB: db, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { rc.Close() })
	return &backends{log: startLog(t), pg: pg, rc: rc, cache: redisread.New(rc, "", time.Hour)}
}

func sharedBackends(t *testing.T) *backends {
	rs := harness.SharedRedis(t)
	return newBackends(t, rs, rs.NewDB(t))
}

// cached returns the read model's entry of doc.
func (b *backends) cached(t *testing.T, doc string) (projections.ReadEntry, bool) {
	t.Helper()
	e, ok, err := b.cache.Get(ctxT(t, 10*time.Second), doc)
	if err != nil {
		t.Fatal(err)
	}
	return e, ok
}

// commit folds doc's log into Postgres and upserts the read model after
// the commit: what the projector does.
func (b *backends) commit(t *testing.T, doc string) projections.DocState {
	t.Helper()
	st := fold(t, b.log, b.pg, doc)
	if err := b.cache.Upsert(ctxT(t, 10*time.Second), []projections.ReadEntry{{Doc: doc, Version: st.Version, Text: st.Text}}); err != nil {
		t.Fatal(err)
	}
	return st
}

func mustCurrent(t *testing.T, s *Service, doc string) Document {
	t.Helper()
	d, err := s.Current(ctxT(t, 10*time.Second), doc)
	if err != nil {
		t.Fatalf("Current(%s): %v", doc, err)
	}
	return d
}

// TestCurrentCacheAside: a miss is served from Postgres and fills Redis
// with the version read; the next read is a hit; a newer commit (and its
// upsert) is what the next read sees.
func TestCurrentCacheAside(t *testing.T) {
	b := sharedBackends(t)
	ctx := ctxT(t, time.Minute)
	w := newWriter(t, b.log, 1)
	w.edit(ctx, "doc", 20)
	st := fold(t, b.log, b.pg, "doc") // Committed, not upserted: a cold cache.
	s, err := New(Config{Log: b.log, State: b.pg, Cache: b.cache})
	if err != nil {
		t.Fatal(err)
	}
	d := mustCurrent(t, s, "doc")
	if d.Source != SourceState || d.Version != st.Version || d.Text != st.Text || d.Author != st.Author || !d.Updated.Equal(apiTime(st.Updated)) {
		t.Fatalf("miss: %+v, want from state: %+v", d, st)
	}
	if e, ok := b.cached(t, "doc"); !ok || e.Version != st.Version || e.Text != st.Text {
		t.Fatalf("after a miss the cache holds %+v (%v), want version %d", e, ok, st.Version)
	}
	d = mustCurrent(t, s, "doc")
	if d.Source != SourceCache || d.Version != st.Version || d.Text != st.Text || d.Author != st.Author || !d.Updated.Equal(apiTime(st.Updated)) {
		t.Fatalf("hit: %+v, want from cache at %d with author and time", d, st.Version)
	}
	w.edit(ctx, "doc", 5)
	st2 := b.commit(t, "doc")
	if d = mustCurrent(t, s, "doc"); d.Source != SourceCache || d.Version != st2.Version || d.Text != st2.Text {
		t.Fatalf("after a newer commit: %+v, want version %d", d, st2.Version)
	}
	// A document the projector has not reached: folded from the log.
	w.edit(ctx, "fresh", 3)
	last, _ := b.log.LastSeq(ctx, "fresh")
	if d = mustCurrent(t, s, "fresh"); d.Source != SourceLog || d.Version != last {
		t.Fatalf("unprojected document: %+v, want from the log at %d", d, last)
	}
	if _, err := s.Current(ctx, "nosuchdoc"); err == nil || !strings.Contains(err.Error(), "unknown_document") {
		t.Fatalf("unknown document: %v", err)
	}
}

// blindCache is a broken cache fill for the control case: it overwrites
// whatever version is cached (a plain SET).
type blindCache struct{ *redisread.Store }

func (c blindCache) Upsert(ctx context.Context, es []projections.ReadEntry) error {
	return blindSet(ctx, c.Store, es)
}

var blindSet func(context.Context, *redisread.Store, []projections.ReadEntry) error

// TestStaleFillNeverWins: a reader loads version 1 from Postgres; before
// it fills the cache, the projector commits version 2 and upserts it; the
// reader's fill of version 1 must not replace it, so every later read is
// version 2. The control, with a blind fill, does serve the stale version:
// the test can tell.
func TestStaleFillNeverWins(t *testing.T) {
	for _, blind := range []bool{false, true} {
		name := map[bool]string{false: "upsert", true: "control: blind fill"}[blind]
		t.Run(name, func(t *testing.T) {
			b := sharedBackends(t)
			ctx := ctxT(t, time.Minute)
			w := newWriter(t, b.log, 2)
			w.edit(ctx, "doc", 10)
			v1 := fold(t, b.log, b.pg, "doc")
			var cache projections.ReadModel = b.cache
			if blind {
				blindSet = func(ctx context.Context, _ *redisread.Store, es []projections.ReadEntry) error {
					if err := b.rc.Del(ctx, "palimpsest:doc:doc").Err(); err != nil {
						return err
					}
					return b.cache.Upsert(ctx, es)
				}
				cache = blindCache{b.cache}
			}
			var once sync.Once
			var v2 projections.DocState
			s, err := New(Config{Log: b.log, State: b.pg, Cache: cache, Fault: func(point string) {
				if point == "state-loaded" {
					once.Do(func() { // The projector's commit lands between the load and the fill.
						w.edit(ctx, "doc", 5)
						v2 = b.commit(t, "doc")
					})
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if d := mustCurrent(t, s, "doc"); d.Version != v1.Version {
				t.Fatalf("first read: version %d, want %d (loaded before the commit)", d.Version, v1.Version)
			}
			d := mustCurrent(t, s, "doc")
			stale := d.Version != v2.Version
			if stale != blind {
				t.Fatalf("read after the commit of %d: version %d from %s (blind fill: %v)", v2.Version, d.Version, d.Source, blind)
			}
		})
	}
}

// TestCacheDown: with Redis stopped, reads are served from Postgres; the
// failure is logged once and counted, and the cache is bypassed until its
// retry time; when Redis is back it is used again.
func TestCacheDown(t *testing.T) {
	rs := harness.NewRedis(t)
	b := newBackends(t, rs, 0)
	ctx := ctxT(t, time.Minute)
	w := newWriter(t, b.log, 3)
	w.edit(ctx, "doc", 10)
	st := b.commit(t, "doc")
	logger, logs := newTestLogger(t)
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := New(Config{Log: b.log, State: b.pg, Cache: b.cache, Logger: logger, Registerer: reg, Now: clock, CacheRetry: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if d := mustCurrent(t, s, "doc"); d.Source != SourceCache {
		t.Fatalf("with Redis up: %+v, want a hit", d)
	}
	if err := rs.Stop(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if d := mustCurrent(t, s, "doc"); d.Source != SourceState || d.Version != st.Version || d.Text != st.Text {
			t.Fatalf("with Redis down: %+v, want version %d from the state store", d, st.Version)
		}
	}
	if n := metricValue(t, s.metrics.cacheErrors.WithLabelValues("get")); n != 1 {
		t.Fatalf("cache get errors %v, want 1: the cache is bypassed until its retry time", n)
	}
	if up := metricValue(t, s.metrics.cacheUp); up != 0 {
		t.Fatalf("palimpsest_read_cache_up %v, want 0", up)
	}
	if n := strings.Count(logs.String(), "cache unavailable"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs)
	}
	mu.Lock()
	now = now.Add(2 * time.Second) // Past the retry time: tried again, still down.
	mu.Unlock()
	mustCurrent(t, s, "doc")
	if n := metricValue(t, s.metrics.cacheErrors.WithLabelValues("get")); n != 2 {
		t.Fatalf("cache get errors %v, want 2", n)
	}
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	mustCurrent(t, s, "doc")
	if d := mustCurrent(t, s, "doc"); d.Source != SourceCache {
		t.Fatalf("with Redis back: %+v, want a hit", d)
	}
	if !strings.Contains(logs.String(), "cache available again") || metricValue(t, s.metrics.cacheUp) != 1 {
		t.Fatalf("recovery not logged or not in palimpsest_read_cache_up:\n%s", logs)
	}
}

// metricValue reads a counter's or gauge's value.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
