package read

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/projections"
)

// Config wires a Service. Log and State are required; every other zero field
// takes the default named on it.
type Config struct {
	// Log is the event log: the truth every answer is checked against.
	Log *eventlog.Log
	// State is the state projection (Postgres in production, JetStream KV
	// embedded): the current documents.
	State projections.StateBackend
	// Snapshots, when set, gives time travel a state near the asked version
	// so it reads only the log's tail. Without it time travel starts from the
	// nearest state in memory, or from the document's first event.
	Snapshots projections.SnapshotStore
	// Cache is the read model put in front of State (cache-aside), Redis in
	// production. nil: no cache. Never give a cache that nobody keeps up to
	// date (an in-process read model of another process's projector): only
	// the projector's upserts make a cached entry newer.
	Cache projections.ReadModel
	// CacheTimeout bounds one cache call (default 250 ms). After a failed
	// call the cache is bypassed for CacheRetry (default 1 s, doubling up to
	// 30 s while it keeps failing).
	CacheTimeout time.Duration
	CacheRetry   time.Duration

	// StateCacheElements and StateCacheEntries bound the decoded document
	// states kept for time travel, in code points and in states (default
	// 2 Mi, about 300 MB, and 256; a decoded code point costs some 150
	// bytes). A negative number of entries disables the cache.
	StateCacheElements int
	StateCacheEntries  int
	// SnapshotCacheBytes bounds the raw snapshots kept in memory (default
	// 64 MiB; negative disables).
	SnapshotCacheBytes int
	// EventCacheEvents bounds the events kept in memory, per document a few
	// runs of consecutive events, so that time travel near versions already
	// visited reads nothing from the log (default 1 Mi events, about 100
	// bytes each; negative disables).
	EventCacheEvents int
	// SegmentCacheBytes bounds the text segments kept for time travel to
	// text (see segments.go; default 64 MiB, negative disables), and
	// SegmentEvents is how many sequences past the asked version a new
	// segment reaches (default 1024).
	SegmentCacheBytes int
	SegmentEvents     uint64
	// BodyCacheBytes bounds the encoded JSON bodies kept by document and
	// version (default 32 MiB; negative disables).
	BodyCacheBytes int
	// IndexCacheEvents bounds the per-document indexes of insert events that
	// blame keeps (default 4 Mi events; negative disables).
	IndexCacheEvents int
	// NearEvents: time travel prefers a decoded state in memory over a
	// snapshot closer to the asked version when the two are at most this
	// many sequences apart (default 2048): replaying that many events is
	// cheaper than decoding a snapshot.
	NearEvents uint64
	// StateFallback: when no snapshot lies within StateFallback sequences
	// below the asked version, time travel also tries the state store's
	// current state as its base (default 4096).
	StateFallback uint64

	// Registerer receives the service's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock of the cache's retry schedule (default time.Now).
	Now func() time.Time
	// Fault, when set, is called at named points ("state-loaded": after the
	// state store answered a current read, before the cache is filled), so
	// tests can interleave a commit there.
	Fault func(point string)
}

func (c Config) withDefaults() (Config, error) {
	if c.Log == nil || c.State == nil {
		return c, errors.New("read: Config.Log and Config.State are required")
	}
	c.CacheTimeout = cmp.Or(c.CacheTimeout, 250*time.Millisecond)
	c.CacheRetry = cmp.Or(c.CacheRetry, time.Second)
	c.StateCacheElements = cmp.Or(c.StateCacheElements, 2<<20)
	c.StateCacheEntries = cmp.Or(c.StateCacheEntries, 256)
	c.SnapshotCacheBytes = cmp.Or(c.SnapshotCacheBytes, 64<<20)
	c.IndexCacheEvents = cmp.Or(c.IndexCacheEvents, 4<<20)
	c.EventCacheEvents = cmp.Or(c.EventCacheEvents, 1<<20)
	c.SegmentCacheBytes = cmp.Or(c.SegmentCacheBytes, 64<<20)
	c.SegmentEvents = cmp.Or(c.SegmentEvents, 1024)
	c.BodyCacheBytes = cmp.Or(c.BodyCacheBytes, 32<<20)
	c.NearEvents = cmp.Or(c.NearEvents, 2048)
	c.StateFallback = cmp.Or(c.StateFallback, 4096)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Fault == nil {
		c.Fault = func(string) {}
	}
	return c, nil
}

// Service answers reads of documents: now, as of any version or instant,
// their history, diffs and blame. It is safe for concurrent use. Handler
// serves it over HTTP; the CLI calls its methods directly.
type Service struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	cache   *breaker
	states  *stateCache
	snaps   *snapCache
	index   *indexCache
	evcache *eventCache
	segs    *segCache
	bodies  *bodyCache
	meta    *metaCache
}

// New returns a service; it starts nothing.
func New(cfg Config) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := newMetrics(cfg.Registerer)
	s := &Service{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: m,
		states:  newStateCache(cfg.StateCacheEntries, cfg.StateCacheElements),
		snaps:   newSnapCache(cfg.SnapshotCacheBytes),
		index:   newIndexCache(cfg.IndexCacheEvents),
		evcache: newEventCache(cfg.EventCacheEvents),
		segs:    newSegCache(cfg.SegmentCacheBytes),
		bodies:  newBodyCache(cfg.BodyCacheBytes),
		meta:    newMetaCache(65536),
	}
	s.cache = &breaker{rm: cfg.Cache, timeout: cfg.CacheTimeout, retry: cfg.CacheRetry, now: cfg.Now, log: cfg.Logger, metrics: m}
	m.cacheUp.Set(1)
	return s, nil
}

// Ready reports whether the service can answer: the event log's connection
// is up and the state store answers.
func (s *Service) Ready(ctx context.Context) error {
	if _, err := s.cfg.Log.Head(ctx); err != nil {
		return err
	}
	store, err := s.cfg.State.Live(ctx)
	if err != nil {
		return err
	}
	_, err = store.Load(ctx, []string{"-"})
	return err
}
