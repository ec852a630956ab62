package projections

import (
	"container/list"
	"context"
	"log/slog"
	"sync"
	"time"
)

// MemoryReadModel is the in-process read model used when no Redis is
// configured: a bounded map, least recently used first out, with the same
// rule as every read model (a newer version is never replaced by an older
// one). It is safe for concurrent use.
type MemoryReadModel struct {
	mu  sync.Mutex
	max int
	lru list.List // of ReadEntry, most recent at the front
	m   map[string]*list.Element
}

// NewMemoryReadModel keeps at most max documents (default 10,000 when
// max <= 0).
func NewMemoryReadModel(max int) *MemoryReadModel {
	if max <= 0 {
		max = 10000
	}
	return &MemoryReadModel{max: max, m: map[string]*list.Element{}}
}

// Upsert implements ReadModel.
func (r *MemoryReadModel) Upsert(_ context.Context, es []ReadEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range es {
		if el := r.m[e.Doc]; el != nil {
			if el.Value.(ReadEntry).Version >= e.Version {
				continue
			}
			el.Value = e
			r.lru.MoveToFront(el)
			continue
		}
		r.m[e.Doc] = r.lru.PushFront(e)
		for r.lru.Len() > r.max {
			back := r.lru.Back()
			r.lru.Remove(back)
			delete(r.m, back.Value.(ReadEntry).Doc)
		}
	}
	return nil
}

// Get implements ReadModel.
func (r *MemoryReadModel) Get(_ context.Context, doc string) (ReadEntry, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	el := r.m[doc]
	if el == nil {
		return ReadEntry{}, false, nil
	}
	r.lru.MoveToFront(el)
	return el.Value.(ReadEntry), true, nil
}

// readWriter upserts the read model behind the commits, in its own
// goroutine: the read model is a cache of the state store, so a slow or
// unreachable Redis never holds the projection up. Pending entries keep only
// the newest version of each document; a failed upsert is retried with
// backoff until it succeeds or the writer stops.
type readWriter struct {
	rm      ReadModel
	log     *slog.Logger
	metrics *Metrics

	mu      sync.Mutex
	pending map[string]ReadEntry
	wake    chan struct{}
	idle    *sync.Cond // signalled when pending becomes empty
}

func newReadWriter(rm ReadModel, log *slog.Logger, m *Metrics) *readWriter {
	w := &readWriter{rm: rm, log: log, metrics: m, pending: map[string]ReadEntry{}, wake: make(chan struct{}, 1)}
	w.idle = sync.NewCond(&w.mu)
	return w
}

func (w *readWriter) enqueue(es []ReadEntry) {
	w.mu.Lock()
	for _, e := range es {
		if old, ok := w.pending[e.Doc]; !ok || old.Version < e.Version {
			w.pending[e.Doc] = e
		}
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run flushes until ctx ends.
func (w *readWriter) run(ctx context.Context) {
	var bo backoff
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			if len(w.pending) == 0 {
				w.idle.Broadcast()
				w.mu.Unlock()
				break
			}
			batch := make([]ReadEntry, 0, len(w.pending))
			for _, e := range w.pending {
				batch = append(batch, e)
			}
			clear(w.pending)
			w.mu.Unlock()
			if err := w.rm.Upsert(ctx, batch); err != nil {
				w.metrics.error("readmodel")
				w.log.Warn("projections: read model upsert failed; will retry", "docs", len(batch), "err", err)
				w.enqueue(batch) // Newer versions queued meanwhile win.
				if !bo.wait(ctx) {
					return
				}
				continue
			}
			bo.reset()
		}
	}
}

// backoff is the retry loop's wait: 50 ms doubling up to 5 s, each wait
// jittered by up to a quarter, reset after a success. It is all the retry
// policy the projector needs, so it is written out here rather than taken
// from a library.
type backoff struct{ cur time.Duration }

const (
	backoffMin = 50 * time.Millisecond
	backoffMax = 5 * time.Second
)

func (b *backoff) reset() { b.cur = 0 }

// wait sleeps for the next interval; false when ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	b.cur = min(max(2*b.cur, backoffMin), backoffMax)
	d := b.cur - time.Duration(jitter(int64(b.cur/4)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// flush waits up to d for the pending upserts to be written.
func (w *readWriter) flush(d time.Duration) {
	done := make(chan struct{})
	go func() {
		w.mu.Lock()
		for len(w.pending) > 0 {
			w.idle.Wait()
		}
		w.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}
