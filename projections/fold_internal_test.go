package projections

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// memStore is a StateStore in a map, for tests of the fold alone.
type memStore struct {
	mu   sync.Mutex
	docs map[string]DocState
}

func (m *memStore) Load(_ context.Context, docs []string) (map[string]DocState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]DocState{}
	for _, d := range docs {
		if st, ok := m.docs[d]; ok {
			out[d] = st
		}
	}
	return out, nil
}

func (m *memStore) Checkpoint(context.Context, int) (uint64, uint64, error) { return 0, 0, nil }

func (m *memStore) Commit(_ context.Context, c *Commit) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range c.Docs {
		if d.Version > m.docs[d.Doc].Version {
			m.docs[d.Doc] = d
		}
	}
	return nil
}

func deliveries(t *testing.T, docs, ops int) []eventlog.Delivery {
	var ds []eventlog.Delivery
	seq := uint64(0)
	reps := map[int]*crdt.Doc{}
	for i := range ops {
		for d := range docs {
			r := reps[d]
			if r == nil {
				r = crdt.New(crdt.SiteID(d+1), rand.NewPCG(uint64(d), 0))
				reps[d] = r
			}
			op, err := r.Insert(i%(r.Len()+1), "x")
			if err != nil {
				t.Fatal(err)
			}
			seq++
			ds = append(ds, eventlog.Delivery{Event: eventlog.Event{Seq: seq, Stored: time.Unix(int64(seq), 0), Event: schemas.Event{
				Type: schemas.EventOp, Doc: fmt.Sprintf("d%d", d), Site: uint32(op.Site), Counter: op.Counter, Payload: crdt.AppendOp(nil, &op)}}})
		}
	}
	return ds
}

// A batch delivered again, whether the documents are still in memory or
// loaded back from the store, changes nothing: every event is at or below
// its document's version.
func TestRedeliveryIsSkipped(t *testing.T) {
	ctx := context.Background()
	store := &memStore{docs: map[string]DocState{}}
	f := folder{cache: newCache(100, 1<<20), now: time.Now}
	ds := deliveries(t, 5, 40)
	out, err := f.fold(ctx, store, 0, 0, ds, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.ops != len(ds) || len(out.docs) != 5 {
		t.Fatalf("first fold: %d ops, %d docs", out.ops, len(out.docs))
	}
	if err := store.Commit(ctx, &Commit{Docs: out.docs}); err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprint(store.docs)
	for _, purge := range []bool{false, true} {
		if purge {
			f.cache.purge(-1)
		}
		again, err := f.fold(ctx, store, 0, 0, ds[len(ds)/3:], nil)
		if err != nil {
			t.Fatal(err)
		}
		if again.ops != 0 || len(again.docs) != 0 || again.skipped != len(ds)-len(ds)/3 {
			t.Fatalf("redelivery (cache purged %v): %d ops applied, %d docs changed, %d skipped", purge, again.ops, len(again.docs), again.skipped)
		}
	}
	if fmt.Sprint(store.docs) != before {
		t.Fatal("a redelivered batch changed the stored state")
	}
}

// The cache keeps its bounds and never evicts the entry just used.
func TestCacheBounds(t *testing.T) {
	c := newCache(3, 1<<20)
	for i := range 10 {
		e := &docEntry{st: DocState{Doc: fmt.Sprint(i)}, doc: newReplica(), partition: i % 2}
		c.put(e)
	}
	if len(c.m) != 3 || c.lru.Len() != 3 {
		t.Fatalf("cache holds %d, want 3", len(c.m))
	}
	c.purge(1)
	for _, e := range c.m {
		if e.partition == 1 {
			t.Fatal("purge left an entry of the partition")
		}
	}
}
