package projections

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// docEntry is a document held in memory between batches: its CRDT replica and
// the metadata of its stored state.
type docEntry struct {
	st        DocState // State and Text are not kept here: the replica is
	doc       *crdt.Doc
	partition int
	// elem and counted (the code points counted in cache.elems) are the
	// cache's, guarded by its mutex.
	elem    *list.Element
	counted int
	// Snapshot cadence.
	sinceSnap int
	lastSnap  time.Time
}

// cache keeps recently folded documents, bounded by count and by code
// points, least recently used first out. It is safe for concurrent use;
// each entry is used by its partition's worker only.
type cache struct {
	mu       sync.Mutex
	maxDocs  int
	maxElems int
	elems    int
	lru      list.List // of *docEntry, most recent at the front
	m        map[string]*docEntry
}

func newCache(maxDocs, maxElems int) *cache {
	return &cache{maxDocs: maxDocs, maxElems: maxElems, m: map[string]*docEntry{}}
}

func (c *cache) get(doc string) *docEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[doc]
	if e != nil {
		c.lru.MoveToFront(e.elem)
	}
	return e
}

// put adds or refreshes e (after its replica changed) and evicts the least
// recently used entries over the bounds, never e itself. Only e's owner may
// call it, and not while it changes e's replica.
func (c *cache) put(e *docEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.elem == nil {
		e.elem = c.lru.PushFront(e)
		c.m[e.st.Doc] = e
	} else {
		c.lru.MoveToFront(e.elem)
	}
	n := e.doc.Len()
	c.elems += n - e.counted
	e.counted = n
	for c.lru.Len() > 1 && (c.lru.Len() > c.maxDocs || c.elems > c.maxElems) {
		back := c.lru.Back().Value.(*docEntry)
		if back == e {
			break
		}
		c.removeLocked(back)
	}
}

func (c *cache) remove(doc string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[doc]; e != nil {
		c.removeLocked(e)
	}
}

func (c *cache) removeLocked(e *docEntry) {
	c.lru.Remove(e.elem)
	e.elem = nil
	delete(c.m, e.st.Doc)
	c.elems -= e.counted
	e.counted = 0
}

// purge drops every entry of partition p (p < 0: every entry).
func (c *cache) purge(p int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.m {
		if p < 0 || e.partition == p {
			c.removeLocked(e)
		}
	}
}

// poison is an event set aside.
type poison struct {
	d      eventlog.Delivery
	reason string
	code   string
}

// folded is the outcome of folding one batch: the changed documents' new
// states, ready to commit.
type folded struct {
	docs    []DocState
	entries []*docEntry // parallel to docs
	poison  []poison
	ops     int // events applied
	skipped int // events at or below their document's version
}

// folder folds batches of events into documents held in a cache.
type folder struct {
	cache *cache
	now   func() time.Time
}

// newReplica is the projector's replica of a document: it never edits
// locally, so its site and randomness never show in the state.
func newReplica() *crdt.Doc { return crdt.New(0, rand.NewPCG(0, 0)) }

func loadReplica(st DocState) (*crdt.Doc, error) {
	if len(st.State) == 0 {
		return newReplica(), nil
	}
	return crdt.LoadSnapshot(st.State, 0, rand.NewPCG(0, 0))
}

// fold applies ds, skipping every event at or below floor and every event at
// or below its document's stored version, and returns the changed
// documents. Documents not in the cache are loaded from store. On error the
// cache may hold documents ahead of the store: the caller must drop the
// batch's documents (forget) before trying again.
//
// beforeLoad, when set, is called before documents are loaded from store:
// the projector waits there for its commit in flight, so a document evicted
// from the cache is never read back older than what is being committed.
func (f *folder) fold(ctx context.Context, store StateStore, p int, floor uint64, ds []eventlog.Delivery, beforeLoad func() error) (*folded, error) {
	type group struct {
		e   *docEntry
		evs []int // indexes into ds
	}
	groups := map[string]*group{}
	var order []string
	var missing []string
	out := &folded{}
	for i := range ds {
		d := &ds[i]
		if d.Seq <= floor {
			out.skipped++
			continue
		}
		if d.Err != nil {
			out.poison = append(out.poison, poison{d: *d, reason: d.Err.Error(), code: codeOf(d.Err)})
			continue
		}
		if d.Type != schemas.EventOp {
			out.poison = append(out.poison, poison{d: *d, reason: fmt.Sprintf("event type %v is not an op", d.Type), code: schemas.CodeBadEvent.String()})
			continue
		}
		g := groups[d.Doc]
		if g == nil {
			g = &group{e: f.cache.get(d.Doc)}
			groups[d.Doc] = g
			order = append(order, d.Doc)
			if g.e == nil {
				missing = append(missing, d.Doc)
			}
		}
		g.evs = append(g.evs, i)
	}
	if len(missing) > 0 {
		if beforeLoad != nil {
			if err := beforeLoad(); err != nil {
				return nil, err
			}
		}
		loaded, err := store.Load(ctx, missing)
		if err != nil {
			return nil, err
		}
		for _, doc := range missing {
			st := loaded[doc]
			st.Doc = doc
			rep, err := loadReplica(st)
			if err != nil {
				return nil, fmt.Errorf("projections: stored state of %q at version %d does not load: %w", doc, st.Version, err)
			}
			st.State, st.Text = nil, ""
			groups[doc].e = &docEntry{st: st, doc: rep, partition: p, lastSnap: f.now()}
		}
	}
	type change struct{ e *docEntry }
	var changed []change
	for _, doc := range order {
		g := groups[doc]
		e := g.e
		dirty := false
		for _, i := range g.evs {
			d := &ds[i]
			if d.Seq <= e.st.Version {
				out.skipped++
				continue
			}
			op, err := crdt.DecodeOp(d.Payload)
			if err == nil && (uint32(op.Site) != d.Site || op.Counter != d.Counter) {
				err = fmt.Errorf("op %d:%d in an event of site %d counter %d", op.Site, op.Counter, d.Site, d.Counter)
			}
			if err == nil {
				_, err = e.doc.Apply(op)
			}
			if err != nil {
				out.poison = append(out.poison, poison{d: *d, reason: err.Error(), code: codeOf(err)})
				continue
			}
			e.st.Version = d.Seq
			e.st.Ops++
			e.st.Updated = d.Stored.UTC().Truncate(time.Microsecond) // What every store keeps.
			e.st.Author = d.Author
			e.sinceSnap++
			out.ops++
			dirty = true
		}
		if dirty {
			changed = append(changed, change{e})
		} else {
			f.cache.put(e) // Keep it (or keep it fresh): its state is known.
		}
	}
	out.docs = make([]DocState, len(changed))
	out.entries = make([]*docEntry, len(changed))
	encode := func(i int) {
		e := changed[i].e
		st := e.st
		st.State = e.doc.AppendSnapshot(nil)
		st.Text = e.doc.Text()
		out.docs[i] = st
		out.entries[i] = e
	}
	parallel(len(changed), encode)
	for _, c := range changed {
		f.cache.put(c.e)
	}
	return out, nil
}

// forget drops the documents of a batch whose commit failed.
func (f *folder) forget(out *folded, ds []eventlog.Delivery) {
	if out != nil {
		for _, e := range out.entries {
			f.cache.remove(e.st.Doc)
		}
	}
	for i := range ds {
		if ds[i].Err == nil {
			f.cache.remove(ds[i].Doc)
		}
	}
}

// committed records the revisions a commit returned.
func (f *folder) committed(out *folded) {
	for i, e := range out.entries {
		e.st.Rev = out.docs[i].Rev
	}
}

// parallel calls fn(0..n-1) on up to GOMAXPROCS goroutines.
func parallel(n int, fn func(int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	wg.Wait()
}

func codeOf(err error) string {
	var se *schemas.Error
	if errors.As(err, &se) {
		return se.Code.String()
	}
	if c := crdt.CodeOf(err); c != "" {
		return string(c)
	}
	return "projection.rejected"
}
