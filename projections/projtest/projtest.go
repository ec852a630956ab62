// Package projtest holds the conformance suites every adapter of a
// projections port passes, each run against the real server by the
// adapter's own tests:
//
//	func TestConformance(t *testing.T) {
//		projtest.StateSuite(t, func(t *testing.T) projections.StateBackend { return open(t) })
//	}
package projtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/projections"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func docState(doc string, version uint64, text string) projections.DocState {
	return projections.DocState{Doc: doc, Version: version, Ops: version * 2, Updated: time.Unix(1700000000, int64(version)*1000).UTC(),
		Author: "author-" + doc, Text: text, State: []byte("state of " + doc + " at " + fmt.Sprint(version))}
}

// sameState compares what a store must keep of a document (not Rev).
func sameState(a, b projections.DocState) bool {
	return a.Doc == b.Doc && a.Version == b.Version && a.Ops == b.Ops && a.Updated.Equal(b.Updated) &&
		a.Author == b.Author && a.Text == b.Text && bytes.Equal(a.State, b.State)
}

// commit loads docs' revisions (as the projector does) and commits.
func commit(t *testing.T, s projections.StateStore, epoch uint64, cps []projections.Checkpoint, docs ...projections.DocState) error {
	t.Helper()
	ctx := ctxT(t)
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.Doc
	}
	have, err := s.Load(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i := range docs {
		docs[i].Rev = have[docs[i].Doc].Rev
	}
	return s.Commit(ctx, &projections.Commit{Docs: docs, Checkpoints: cps, Epoch: epoch})
}

// StateSuite is the conformance suite of projections.StateBackend. open
// returns a backend on an empty store, closed by the test's cleanup.
func StateSuite(t *testing.T, open func(t *testing.T) projections.StateBackend) {
	t.Run("EmptyStore", func(t *testing.T) {
		ctx := ctxT(t)
		s, err := open(t).Live(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx, []string{"nothing"})
		if err != nil || len(got) != 0 {
			t.Fatalf("Load of a missing doc = %v, %v; want empty", got, err)
		}
		seq, epoch, err := s.Checkpoint(ctx, 3)
		if err != nil || seq != 0 || epoch != 0 {
			t.Fatalf("Checkpoint of a new partition = %d, %d, %v", seq, epoch, err)
		}
	})
	t.Run("CommitAndLoad", func(t *testing.T) {
		ctx := ctxT(t)
		s, err := open(t).Live(ctx)
		if err != nil {
			t.Fatal(err)
		}
		big := strings.Repeat("ü", 50000)
		a, b := docState("a", 10, "hello"), docState("b", 12, big)
		b.State = bytes.Repeat([]byte{0, 1, 2, 255}, 40000) // Binary, with NULs.
		if err := commit(t, s, 1, []projections.Checkpoint{{Partition: 0, Seq: 12}}, a, b); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx, []string{"a", "b", "c"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !sameState(got["a"], a) || !sameState(got["b"], b) {
			t.Fatalf("Load after Commit: got %d docs; a equal %v, b equal %v", len(got), sameState(got["a"], a), sameState(got["b"], b))
		}
		if seq, epoch, _ := s.Checkpoint(ctx, 0); seq != 12 || epoch != 1 {
			t.Fatalf("checkpoint = %d epoch %d, want 12 epoch 1", seq, epoch)
		}
		// A newer version replaces; the checkpoint advances.
		a2 := docState("a", 20, "hello, world")
		if err := commit(t, s, 1, []projections.Checkpoint{{Partition: 0, Seq: 20}}, a2); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Load(ctx, []string{"a"})
		if !sameState(got["a"], a2) {
			t.Fatalf("after update: %+v", got["a"])
		}
		// A checkpoint never moves back.
		if err := commit(t, s, 1, []projections.Checkpoint{{Partition: 0, Seq: 5}}); err != nil {
			t.Fatal(err)
		}
		if seq, _, _ := s.Checkpoint(ctx, 0); seq != 20 {
			t.Fatalf("checkpoint moved back to %d", seq)
		}
	})
	t.Run("Fencing", func(t *testing.T) {
		ctx := ctxT(t)
		s, err := open(t).Live(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cp := func(seq uint64) []projections.Checkpoint { return []projections.Checkpoint{{Partition: 2, Seq: seq}} }
		if err := commit(t, s, 5, cp(10), docState("x", 10, "new owner")); err != nil {
			t.Fatal(err)
		}
		err = commit(t, s, 4, cp(11), docState("x", 11, "stale owner"))
		if !errors.Is(err, projections.ErrFenced) {
			t.Fatalf("commit with an older epoch: %v, want ErrFenced", err)
		}
		got, _ := s.Load(ctx, []string{"x"})
		if got["x"].Text != "new owner" {
			t.Fatalf("a fenced commit changed the state: %q", got["x"].Text)
		}
		if seq, epoch, _ := s.Checkpoint(ctx, 2); seq != 10 || epoch != 5 {
			t.Fatalf("a fenced commit changed the checkpoint: %d epoch %d", seq, epoch)
		}
		if err := commit(t, s, 6, cp(12), docState("x", 12, "next owner")); err != nil {
			t.Fatalf("a newer epoch: %v", err)
		}
	})
	t.Run("GenerationsAndPromote", func(t *testing.T) {
		ctx := ctxT(t)
		be := open(t)
		old, err := be.Live(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := commit(t, old, 1, []projections.Checkpoint{{Partition: 0, Seq: 3}}, docState("d", 3, "old")); err != nil {
			t.Fatal(err)
		}
		fresh, err := be.Fresh(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := fresh.Load(ctx, []string{"d"}); len(got) != 0 {
			t.Fatal("a fresh generation is not empty")
		}
		if seq, _, _ := fresh.Checkpoint(ctx, 0); seq != 0 {
			t.Fatal("a fresh generation has a checkpoint")
		}
		if err := commit(t, fresh, 0, []projections.Checkpoint{{Partition: 0, Seq: 4}}, docState("d", 4, "rebuilt")); err != nil {
			t.Fatal(err)
		}
		// Before Promote, readers see the old generation.
		live, _ := be.Live(ctx)
		if got, _ := live.Load(ctx, []string{"d"}); got["d"].Text != "old" {
			t.Fatalf("before promote the live doc is %q", got["d"].Text)
		}
		if err := be.Promote(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		live, _ = be.Live(ctx)
		if got, _ := live.Load(ctx, []string{"d"}); got["d"].Text != "rebuilt" {
			t.Fatalf("after promote the live doc is %q", got["d"].Text)
		}
		err = commit(t, old, 1, []projections.Checkpoint{{Partition: 0, Seq: 9}}, docState("d", 9, "late"))
		if !errors.Is(err, projections.ErrNotLive) {
			t.Fatalf("commit to a retired generation: %v, want ErrNotLive", err)
		}
		if got, _ := live.Load(ctx, []string{"d"}); got["d"].Text != "rebuilt" {
			t.Fatalf("a commit to the retired generation reached the live one: %q", got["d"].Text)
		}
		// An epoch from the old generation still works on the new one.
		if err := commit(t, live, 7, []projections.Checkpoint{{Partition: 0, Seq: 10}}, docState("d", 10, "live again")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ConcurrentPartitions", func(t *testing.T) {
		ctx := ctxT(t)
		s, err := open(t).Live(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for p := range 4 {
			wg.Go(func() {
				for v := uint64(1); v <= 10; v++ {
					var docs []projections.DocState
					for i := range 20 {
						docs = append(docs, docState(fmt.Sprintf("p%d-d%d", p, i), v, fmt.Sprintf("v%d", v)))
					}
					if err := commit(t, s, 1, []projections.Checkpoint{{Partition: p, Seq: v}}, docs...); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for p := range 4 {
			if seq, _, _ := s.Checkpoint(ctx, p); seq != 10 {
				t.Fatalf("partition %d checkpoint %d", p, seq)
			}
			got, _ := s.Load(ctx, []string{fmt.Sprintf("p%d-d19", p)})
			if got[fmt.Sprintf("p%d-d19", p)].Text != "v10" {
				t.Fatalf("partition %d: %+v", p, got)
			}
		}
	})
}

// SnapshotSuite is the conformance suite of projections.SnapshotStore. open
// returns a store on an empty bucket.
func SnapshotSuite(t *testing.T, open func(t *testing.T) projections.SnapshotStore) {
	t.Run("Nearest", func(t *testing.T) {
		ctx := ctxT(t)
		s := open(t)
		if _, _, err := s.Nearest(ctx, "doc", 100); !errors.Is(err, projections.ErrNoSnapshot) {
			t.Fatalf("Nearest with no snapshots: %v", err)
		}
		for _, v := range []uint64{5, 100, 1000, 99999999999} {
			if err := s.Put(ctx, "doc", v, []byte(fmt.Sprintf("state@%d", v))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Put(ctx, "doc2", 50, []byte("other")); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ at, want uint64 }{{5, 5}, {6, 5}, {99, 5}, {100, 100}, {999, 100}, {1000, 1000}, {5000, 1000}, {1 << 62, 99999999999}} {
			seq, state, err := s.Nearest(ctx, "doc", c.at)
			if err != nil || seq != c.want || string(state) != fmt.Sprintf("state@%d", c.want) {
				t.Fatalf("Nearest(doc, %d) = %d %q %v; want %d", c.at, seq, state, err, c.want)
			}
		}
		if _, _, err := s.Nearest(ctx, "doc", 4); !errors.Is(err, projections.ErrNoSnapshot) {
			t.Fatalf("Nearest before the first snapshot: %v", err)
		}
		if _, _, err := s.Nearest(ctx, "do", 1<<40); !errors.Is(err, projections.ErrNoSnapshot) {
			t.Fatalf("a document whose id prefixes another's sees its snapshots: %v", err)
		}
	})
	t.Run("PutReplacesAndLarge", func(t *testing.T) {
		ctx := ctxT(t)
		s := open(t)
		big := bytes.Repeat([]byte{7, 0, 9}, 1<<20)
		if err := s.Put(ctx, "d", 9, []byte("first")); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "d", 9, big); err != nil {
			t.Fatal(err)
		}
		_, got, err := s.Nearest(ctx, "d", 9)
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("large snapshot: %d bytes, %v", len(got), err)
		}
	})
	t.Run("Prune", func(t *testing.T) {
		ctx := ctxT(t)
		s := open(t)
		for v := uint64(1); v <= 6; v++ {
			if err := s.Put(ctx, "p", v*10, []byte{byte(v)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Prune(ctx, "p", 2); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Nearest(ctx, "p", 40); !errors.Is(err, projections.ErrNoSnapshot) {
			t.Fatalf("a pruned snapshot is still found: %v", err)
		}
		if seq, _, err := s.Nearest(ctx, "p", 55); err != nil || seq != 50 {
			t.Fatalf("Nearest after prune = %d, %v", seq, err)
		}
		if err := s.Prune(ctx, "p", 5); err != nil {
			t.Fatal(err)
		}
		if seq, _, err := s.Nearest(ctx, "p", 1000); err != nil || seq != 60 {
			t.Fatalf("Nearest after a no-op prune = %d, %v", seq, err)
		}
	})
}

// ReadModelSuite is the conformance suite of projections.ReadModel. open
// returns a read model on an empty store.
func ReadModelSuite(t *testing.T, open func(t *testing.T) projections.ReadModel) {
	t.Run("NeverOlderOverNewer", func(t *testing.T) {
		ctx := ctxT(t)
		r := open(t)
		if _, found, err := r.Get(ctx, "a"); err != nil || found {
			t.Fatalf("Get of a missing doc: %v %v", found, err)
		}
		if err := r.Upsert(ctx, []projections.ReadEntry{{Doc: "a", Version: 10, Text: "ten"}, {Doc: "b", Version: 1, Text: ""}}); err != nil {
			t.Fatal(err)
		}
		if err := r.Upsert(ctx, []projections.ReadEntry{{Doc: "a", Version: 9, Text: "nine"}, {Doc: "a", Version: 10, Text: "ten again"}}); err != nil {
			t.Fatal(err)
		}
		e, found, err := r.Get(ctx, "a")
		if err != nil || !found || e.Version != 10 || e.Text != "ten" {
			t.Fatalf("after an older upsert: %+v %v %v", e, found, err)
		}
		if err := r.Upsert(ctx, []projections.ReadEntry{{Doc: "a", Version: 11, Text: "eleven ✓"}}); err != nil {
			t.Fatal(err)
		}
		if e, _, _ := r.Get(ctx, "a"); e.Version != 11 || e.Text != "eleven ✓" {
			t.Fatalf("after a newer upsert: %+v", e)
		}
		if e, found, _ := r.Get(ctx, "b"); !found || e.Text != "" || e.Version != 1 {
			t.Fatalf("empty text: %+v %v", e, found)
		}
	})
	t.Run("ConcurrentUpserts", func(t *testing.T) {
		ctx := ctxT(t)
		r := open(t)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for v := uint64(1); v <= 50; v++ {
					_ = r.Upsert(ctx, []projections.ReadEntry{{Doc: "c", Version: v*4 + uint64(w), Text: fmt.Sprint(v*4 + uint64(w))}})
				}
			})
		}
		wg.Wait()
		e, _, err := r.Get(ctx, "c")
		if err != nil || e.Version != 203 || e.Text != "203" {
			t.Fatalf("after concurrent upserts: %+v %v", e, err)
		}
	})
}
