package read

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/palimpsest-editor/palimpsest/projections"
)

// breaker is the cache as the read path uses it: every call is bounded by a
// timeout, and after a failure the cache is bypassed (reads go to the state
// store) for a retry interval that doubles while it keeps failing, so a
// dead Redis costs one failed call per interval, not one per request. The
// first failure and the recovery are logged; every failure is counted
// (palimpsest_read_cache_errors_total) and palimpsest_read_cache_up says
// whether the cache is in use.
type breaker struct {
	rm      projections.ReadModel // nil: no cache
	timeout time.Duration
	retry   time.Duration
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics

	mu    sync.Mutex
	down  bool
	until time.Time
	wait  time.Duration
}

const maxCacheRetry = 30 * time.Second

// allow reports whether the cache may be called now.
func (b *breaker) allow() bool {
	if b.rm == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.down || !b.now().Before(b.until)
}

func (b *breaker) failed(op string, err error) {
	b.metrics.cacheErrors.WithLabelValues(op).Inc()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.down {
		b.down, b.wait = true, b.retry
		b.metrics.cacheUp.Set(0)
		b.log.Warn("read: cache unavailable; serving from the state store", "op", op, "retry_in", b.wait, "err", err)
	} else {
		b.wait = min(2*b.wait, maxCacheRetry)
	}
	b.until = b.now().Add(b.wait)
}

func (b *breaker) ok() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		b.down = false
		b.metrics.cacheUp.Set(1)
		b.log.Info("read: cache available again")
	}
}

// get returns doc's cached entry; false on a miss, an error or while the
// cache is bypassed.
func (b *breaker) get(ctx context.Context, doc string) (projections.ReadEntry, bool) {
	if !b.allow() {
		return projections.ReadEntry{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	e, found, err := b.rm.Get(ctx, doc)
	if err != nil {
		b.failed("get", err)
		return projections.ReadEntry{}, false
	}
	b.ok()
	b.metrics.cacheLookups.WithLabelValues(hitOrMiss(found)).Inc()
	return e, found
}

// fill puts e in the cache unless it holds a newer version (Upsert's rule).
func (b *breaker) fill(ctx context.Context, e projections.ReadEntry) {
	if !b.allow() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
	defer cancel()
	if err := b.rm.Upsert(ctx, []projections.ReadEntry{e}); err != nil {
		b.failed("fill", err)
		return
	}
	b.ok()
}

func hitOrMiss(found bool) string {
	if found {
		return "hit"
	}
	return "miss"
}
