package read

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/kvstate"
	"github.com/palimpsest-editor/palimpsest/projections/objsnap"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the randomized tests (0: from the clock)")

func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed %d)", seed, seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d: go test ./services/read -run '%s' -seed %d", seed, t.Name(), seed)
		}
	})
	return seed
}

// history is a log of several documents written in interleaved batches, so
// that a document's versions are not contiguous sequences, with a poison
// event here and there, and the oracle of every document.
type history struct {
	log     *eventlog.Log
	docs    []string
	oracles map[string]*oracle
	snaps   *objsnap.Store
	state   projections.StateBackend
}

const snapEvery = 40

func writeHistory(t *testing.T, seed uint64) *history {
	ctx := ctxT(t, 2*time.Minute)
	l := startLog(t)
	w := newWriter(t, l, seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	h := &history{log: l, docs: []string{"alpha", "beta", "gamma"}, oracles: map[string]*oracle{}}
	for range 60 {
		doc := h.docs[rng.IntN(len(h.docs))]
		switch rng.IntN(15) {
		case 0:
			w.poison(ctx, doc)
			continue
		case 1:
			if w.forge(ctx, doc) {
				continue
			}
		}
		w.edit(ctx, doc, 1+rng.IntN(30))
	}
	var err error
	if h.snaps, err = objsnap.Open(ctx, l, "snaps"); err != nil {
		t.Fatal(err)
	}
	if h.state, err = kvstate.Open(ctx, l); err != nil {
		t.Fatal(err)
	}
	for _, doc := range h.docs {
		o := replay(t, l, doc, snapEvery)
		h.oracles[doc] = o
		for _, v := range o.versions {
			if st := o.at[v]; st.snap != nil {
				if err := h.snaps.Put(ctx, doc, v, st.snap); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return h
}

// TestTimeTravelMatchesReplay: for random documents and versions, the state
// at v (text and identifiers) is the oracle's, which replayed the log from
// its start; with and without snapshots, with and without the state cache,
// across snapshot boundaries; sequences that are not versions of the
// document are unknown_version.
func TestTimeTravelMatchesReplay(t *testing.T) {
	seed := testSeed(t)
	h := writeHistory(t, seed)
	variants := []struct {
		name string
		cfg  Config
	}{
		{"no snapshots", Config{}},
		{"snapshots", Config{Snapshots: h.snaps, NearEvents: 8}},
		{"snapshots, no state cache", Config{Snapshots: h.snaps, StateCacheEntries: -1}},
		{"snapshots, tiny caches", Config{Snapshots: h.snaps, StateCacheEntries: 2, SnapshotCacheBytes: 1, NearEvents: 1, EventCacheEvents: 7}},
		{"no event cache", Config{Snapshots: h.snaps, EventCacheEvents: -1, NearEvents: 4}},
		{"no segments", Config{Snapshots: h.snaps, SegmentCacheBytes: -1}},
		{"short segments", Config{Snapshots: h.snaps, SegmentEvents: 3, SegmentCacheBytes: 4096}},
	}
	for _, vr := range variants {
		t.Run(vr.name, func(t *testing.T) {
			ctx := ctxT(t, 2*time.Minute)
			cfg := vr.cfg
			cfg.Log, cfg.State = h.log, h.state
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(seed, 3))
			for i := range 250 {
				doc := h.docs[rng.IntN(len(h.docs))]
				o := h.oracles[doc]
				k := rng.IntN(len(o.versions))
				if i%3 == 0 { // Right at, before or after a snapshot.
					k = min(len(o.versions)-1, max(0, (1+rng.IntN(len(o.versions)/snapEvery+1))*snapEvery-1+rng.IntN(3)-1))
				}
				v := o.versions[k]
				checkState(t, ctx, s, o, v)
			}
			// Sequences that are not versions of the document.
			for _, doc := range h.docs {
				o := h.oracles[doc]
				last := o.versions[len(o.versions)-1]
				for _, other := range h.docs {
					if other == doc {
						continue
					}
					for _, v := range h.oracles[other].versions[:5] {
						if _, err := s.At(ctx, doc, v); !errors.Is(err, schemas.ErrUnknownVersion) {
							t.Fatalf("At(%s, %d), a version of %s: err %v, want unknown_version", doc, v, other, err)
						}
					}
				}
				if _, err := s.At(ctx, doc, last+1000); !errors.Is(err, schemas.ErrUnknownVersion) {
					t.Fatalf("At(%s, %d) beyond its last version: err %v, want unknown_version", doc, last+1000, err)
				}
			}
			if _, err := s.At(ctx, "nosuchdoc", 1); !errors.Is(err, schemas.ErrUnknownDocument) {
				t.Fatalf("At(nosuchdoc, 1): err %v, want unknown_document", err)
			}
		})
	}
}

// checkState compares the service's state of doc at v with the oracle's.
func checkState(t *testing.T, ctx context.Context, s *Service, o *oracle, v uint64) {
	t.Helper()
	want := o.at[v]
	st, err := s.checkout(ctx, o.doc, v)
	if err != nil {
		t.Fatalf("checkout(%s, %d) (version #%d): %v", o.doc, v, want.index, err)
	}
	gotText, gotIDs := st.d.Text(), idString(st.d)
	s.checkin(st)
	if gotText != want.text || gotIDs != want.ids {
		t.Fatalf("state of %s at %d (version #%d): text %q, want %q (identifiers equal: %v)", o.doc, v, want.index, gotText, want.text, gotIDs == want.ids)
	}
	d, err := s.At(ctx, o.doc, v)
	if err != nil {
		t.Fatal(err)
	}
	ev := o.events[v]
	if d.Text != want.text || d.Version != v || d.Author != ev.Author || !d.Updated.Equal(apiTime(ev.Stored)) || d.Length != len([]rune(want.text)) {
		t.Fatalf("At(%s, %d) = %+v, want text %q, author %q, updated %v", o.doc, v, d, want.text, ev.Author, ev.Stored)
	}
}

// TestTimeTravelByTime: at=<instant> is the last version stored at or
// before it.
func TestTimeTravelByTime(t *testing.T) {
	seed := testSeed(t)
	h := writeHistory(t, seed)
	ctx := ctxT(t, time.Minute)
	s, err := New(Config{Log: h.log, State: h.state, Snapshots: h.snaps})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 4))
	for range 60 {
		o := h.oracles[h.docs[rng.IntN(len(h.docs))]]
		v := o.versions[rng.IntN(len(o.versions))]
		at := o.events[v].Stored.Add(time.Duration(rng.IntN(3)-1) * time.Nanosecond)
		var want uint64
		for _, u := range o.versions {
			if !o.events[u].Stored.After(at) {
				want = u
			}
		}
		d, err := s.AtTime(ctx, o.doc, at)
		if want == 0 {
			if !errors.Is(err, schemas.ErrUnknownVersion) {
				t.Fatalf("AtTime(%s, %s) before the first event: err %v, want unknown_version", o.doc, at, err)
			}
			continue
		}
		if err != nil || d.Version != want || d.Text != o.at[want].text {
			t.Fatalf("AtTime(%s, %s) = version %d, err %v; want version %d", o.doc, at, d.Version, err, want)
		}
	}
	o := h.oracles[h.docs[0]]
	d, err := s.AtTime(ctx, o.doc, time.Now().Add(time.Hour))
	if last := o.versions[len(o.versions)-1]; err != nil || d.Version != last {
		t.Fatalf("AtTime(future) = %d, %v; want the last version %d", d.Version, err, last)
	}
}

// TestDiffAndBlame: applying a diff's changes to from's text gives to's
// text, the counts are the identifier set differences, and every blamed
// element's event is the one that inserted it (by the oracle's fold).
func TestDiffAndBlame(t *testing.T) {
	seed := testSeed(t)
	h := writeHistory(t, seed)
	ctx := ctxT(t, 2*time.Minute)
	s, err := New(Config{Log: h.log, State: h.state, Snapshots: h.snaps})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 5))
	for range 60 {
		o := h.oracles[h.docs[rng.IntN(len(h.docs))]]
		var from, to uint64
		if rng.IntN(8) > 0 {
			from = o.versions[rng.IntN(len(o.versions))]
		}
		to = o.versions[rng.IntN(len(o.versions))]
		d, err := s.Diff(ctx, o.doc, from, to)
		if err != nil {
			t.Fatalf("Diff(%s, %d, %d): %v", o.doc, from, to, err)
		}
		fromText := ""
		if from > 0 {
			fromText = o.at[from].text
		}
		if got := applyDiff(fromText, d.Changes); got != o.at[to].text {
			t.Fatalf("Diff(%s, %d, %d) applied to from's text = %q, want %q", o.doc, from, to, got, o.at[to].text)
		}
		ins, del := 0, 0
		for _, c := range d.Changes {
			n := len([]rune(c.Text))
			if c.Op == "insert" {
				ins += n
			} else {
				del += n
			}
		}
		if ins != d.Inserted || del != d.Deleted {
			t.Fatalf("Diff counts %d/%d, changes hold %d/%d", d.Inserted, d.Deleted, ins, del)
		}
	}
	for range 30 {
		o := h.oracles[h.docs[rng.IntN(len(h.docs))]]
		v := o.versions[rng.IntN(len(o.versions))]
		for _, g := range []string{ByEvent, ByAuthor} {
			b, err := s.Blame(ctx, o.doc, v, g)
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.checkout(ctx, o.doc, v)
			if err != nil {
				t.Fatal(err)
			}
			els := collect(st.d)
			s.checkin(st)
			pos := 0
			text := ""
			for _, r := range b.Runs {
				if r.Pos != pos {
					t.Fatalf("blame run at %d, want %d", r.Pos, pos)
				}
				for i := r.Pos; i < r.Pos+r.Length; i++ {
					want := o.dots[els.ids[i].Origin()]
					ev := o.events[want]
					if g == ByEvent && (r.Version != want || r.FirstVersion != want) || r.Author != ev.Author || want < r.FirstVersion || want > r.Version {
						t.Fatalf("blame (%s) of %s at %d: element %d in run %+v; its inserting event is %d by %s", g, o.doc, v, i, r, want, ev.Author)
					}
				}
				pos += r.Length
				text += r.Text
			}
			if text != o.at[v].text {
				t.Fatalf("blame runs spell %q, want %q", text, o.at[v].text)
			}
		}
	}
}

// applyDiff applies changes to text as Change documents.
func applyDiff(text string, cs []Change) string {
	from := []rune(text)
	var out []rune
	i := 0
	for _, c := range cs {
		out = append(out, from[i:c.FromPos]...)
		i = c.FromPos
		if c.Op == "delete" {
			i += len([]rune(c.Text))
		} else {
			out = append(out, []rune(c.Text)...)
		}
	}
	return string(append(out, from[i:]...))
}

// TestHistoryPages: paging through with small pages yields every event of
// the document once, in order; author and time filters select exactly.
func TestHistoryPages(t *testing.T) {
	seed := testSeed(t)
	h := writeHistory(t, seed)
	ctx := ctxT(t, time.Minute)
	s, err := New(Config{Log: h.log, State: h.state})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 6))
	for _, doc := range h.docs {
		o := h.oracles[doc]
		a, b := o.events[o.versions[rng.IntN(len(o.versions))]].Stored, o.events[o.versions[rng.IntN(len(o.versions))]].Stored
		if b.Before(a) {
			a, b = b, a
		}
		author := o.events[o.versions[0]].Author
		for _, q := range []HistoryQuery{{}, {Author: author}, {Since: a}, {Until: b}, {Since: a, Until: b, Author: author}} {
			var want []uint64
			for _, v := range o.versions {
				ev := o.events[v]
				if (q.Author == "" || ev.Author == q.Author) && (q.Since.IsZero() || !ev.Stored.Before(q.Since)) && (q.Until.IsZero() || !ev.Stored.After(q.Until)) {
					want = append(want, v)
				}
			}
			q.Limit = 1 + rng.IntN(9)
			var got []uint64
			for pages := 0; ; pages++ {
				p, err := s.History(ctx, doc, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range p.Versions {
					got = append(got, v.Version)
					ev := o.events[v.Version]
					if v.Author != ev.Author || !v.Time.Equal(apiTime(ev.Stored)) || v.Prev != ev.PrevSeq {
						t.Fatalf("history entry %+v, event %+v", v, ev)
					}
					if v.Kind == "insert" && v.Summary[0] != '+' || v.Kind == "delete" && v.Summary[0] == '+' {
						t.Fatalf("history entry %+v: summary", v)
					}
				}
				if p.NextCursor == "" {
					break
				}
				if pages > 1000 {
					t.Fatal("history does not end")
				}
				q.Cursor = p.NextCursor
			}
			if !slices.Equal(got, want) {
				t.Fatalf("history of %s with %+v: %v, want %v", doc, q, got, want)
			}
		}
	}
	if _, err := s.History(ctx, "alpha", HistoryQuery{Cursor: "garbage"}); !errors.Is(err, schemas.ErrBadQuery) {
		t.Fatalf("bad cursor: %v", err)
	}
	if _, err := s.History(ctx, "nosuchdoc", HistoryQuery{}); !errors.Is(err, schemas.ErrUnknownDocument) {
		t.Fatalf("unknown document: %v", err)
	}
}

// TestStateCacheBounds: the cache of decoded states keeps its bounds and
// hands a state to one taker only.
func TestStateCacheBounds(t *testing.T) {
	c := newStateCache(3, 10)
	mk := func(doc string, v uint64, n int) *state {
		d := replica()
		if n > 0 {
			w := crdt.New(1, rand.NewPCG(1, 1))
			op, _ := w.Insert(0, string(make([]rune, n)))
			if _, err := d.Apply(op); err != nil {
				t.Fatal(err)
			}
		}
		return &state{doc: doc, version: v, d: d}
	}
	c.put(mk("a", 10, 2))
	c.put(mk("a", 20, 2))
	c.put(mk("b", 5, 2))
	if got := c.take("a", 15); got == nil || got.version != 10 {
		t.Fatalf("take(a, 15) = %v, want a@10", got)
	}
	if got := c.take("a", 15); got != nil {
		t.Fatalf("second take(a, 15) = %v, want nil: a state has one taker", got)
	}
	c.put(mk("a", 30, 2))
	c.put(mk("c", 1, 2))
	if c.len() != 3 {
		t.Fatalf("%d states, want 3", c.len())
	}
	c.put(mk("d", 1, 9)) // Over the elements bound: only d stays.
	if c.len() != 1 || c.take("d", 1) == nil {
		t.Fatalf("after a big put: %d states", c.len())
	}
}

// TestOracleIsTheProjector: the tests' oracle folds the log as the real
// projector does (poison and forged events included), so "equals the
// oracle" means "equals what the projector commits".
func TestOracleIsTheProjector(t *testing.T) {
	seed := testSeed(t)
	h := writeHistory(t, seed)
	ctx := ctxT(t, 2*time.Minute)
	p, err := projections.New(projections.Config{Log: h.log, State: h.state, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(pctx) }()
	defer func() { stop(); <-done }()
	store, err := h.state.Live(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range h.docs {
		o := h.oracles[doc]
		var applied uint64 // The projector's version is its last applied event.
		for _, v := range o.versions {
			if o.at[v].index == 0 || o.at[v].ids != o.at[o.versions[o.at[v].index-1]].ids {
				applied = v
			}
		}
		for {
			m, err := store.Load(ctx, []string{doc})
			if err != nil {
				t.Fatal(err)
			}
			if st, ok := m[doc]; ok && st.Version >= applied {
				if st.Text != o.final.Text() {
					t.Fatalf("projector's %s at %d: %q, oracle's %q", doc, st.Version, st.Text, o.final.Text())
				}
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("projector did not reach %s version %d", doc, applied)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// TestEventCacheRuns: runs merge when they touch or overlap, after() answers
// only from a version on, and the bound holds.
func TestEventCacheRuns(t *testing.T) {
	ev := func(seq, prev uint64) cachedEvent { return cachedEvent{seq: seq, prev: prev, ok: true} }
	c := newEventCache(100)
	c.add("d", []cachedEvent{ev(5, 2), ev(9, 5), ev(12, 9)}) // (2, 12]
	c.add("d", []cachedEvent{ev(20, 15), ev(30, 20)})        // (15, 30]
	seqs := func(es []cachedEvent) (out []uint64) {
		for _, e := range es {
			out = append(out, e.seq)
		}
		return out
	}
	for _, tc := range []struct {
		base uint64
		want []uint64
		hi   uint64
	}{{2, []uint64{5, 9, 12}, 12}, {5, []uint64{9, 12}, 12}, {12, nil, 12}, {7, nil, 7}, {15, []uint64{20, 30}, 30}, {1, nil, 1}, {13, nil, 13}} {
		got, hi := c.after("d", tc.base)
		if !slices.Equal(seqs(got), tc.want) || hi != tc.hi {
			t.Fatalf("after(%d) = %v, %d; want %v, %d", tc.base, seqs(got), hi, tc.want, tc.hi)
		}
	}
	c.add("d", []cachedEvent{ev(15, 12)}) // Joins both runs: (2, 30].
	if got, hi := c.after("d", 2); !slices.Equal(seqs(got), []uint64{5, 9, 12, 15, 20, 30}) || hi != 30 {
		t.Fatalf("after a joining event: %v, %d", seqs(got), hi)
	}
	if e, ok := c.lookup("d", 15); !ok || e.prev != 12 {
		t.Fatalf("lookup(15) = %+v, %v", e, ok)
	}
	if _, ok := c.lookup("d", 16); ok {
		t.Fatal("lookup(16) found an event that does not exist")
	}
	c = newEventCache(4)
	c.add("a", []cachedEvent{ev(1, 0), ev(2, 1), ev(3, 2)})
	c.add("b", []cachedEvent{ev(4, 0), ev(5, 4)})
	if _, hi := c.after("a", 0); hi != 0 || c.n != 2 {
		t.Fatalf("a not evicted: hi %d, %d events", hi, c.n)
	}
	c.add("b", []cachedEvent{ev(6, 5), ev(7, 6), ev(8, 7)})
	if got, hi := c.after("b", 4); c.n > 4 || hi != 8 || len(got) == 0 {
		t.Fatalf("one document over the bound: %d events, after(4) = %v, %d", c.n, seqs(got), hi)
	}
}
