package crdt

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// checkTree verifies every invariant of the counted B+tree: runs, counts, first identifiers,
// parent links, leaf links, order, and the element total.
func checkTree(t *testing.T, tr *tree) {
	t.Helper()
	if tr.root == nil {
		if tr.n != 0 {
			t.Fatalf("empty tree with n=%d", tr.n)
		}
		return
	}
	if tr.root.parent != nil {
		t.Fatal("root has a parent")
	}
	var leaves []*node
	var walk func(n *node) int
	walk = func(n *node) int {
		if n.leaf {
			if len(n.runs) == 0 || len(n.runs) > leafCap {
				t.Fatalf("leaf of %d runs", len(n.runs))
			}
			size := 0
			for _, r := range n.runs {
				if len(r.elems) == 0 || len(r.elems) > runCap || len(r.prefix)%tripleSize != 0 {
					t.Fatalf("run of %d elements, prefix of %d bytes", len(r.elems), len(r.prefix))
				}
				for i := 1; i < len(r.elems); i++ {
					if r.elems[i].digit <= r.elems[i-1].digit {
						t.Fatal("run digits not increasing")
					}
				}
				size += len(r.elems)
			}
			if size != n.n {
				t.Fatalf("leaf counts %d elements, holds %d", n.n, size)
			}
			leaves = append(leaves, n)
			return size
		}
		if len(n.children) == 0 || len(n.children) > innerCap {
			t.Fatalf("internal node of %d children", len(n.children))
		}
		total := 0
		for i, c := range n.children {
			if c.parent != n || c.idx != i {
				t.Fatal("child's parent link or index is wrong")
			}
			size := walk(c)
			if n.counts[i] != size {
				t.Fatalf("count %d, subtree holds %d", n.counts[i], size)
			}
			if n.firsts[i] != c.first() {
				t.Fatal("stale first identifier")
			}
			total += size
		}
		return total
	}
	if got := walk(tr.root); got != tr.n {
		t.Fatalf("tree holds %d elements, n=%d", got, tr.n)
	}
	for i, l := range leaves {
		var prev, next *node
		if i > 0 {
			prev = leaves[i-1]
		}
		if i+1 < len(leaves) {
			next = leaves[i+1]
		}
		if l.prev != prev || l.next != next {
			t.Fatalf("leaf %d links are wrong", i)
		}
	}
	var all []ID
	tr.eachRun(func(r *run) bool {
		for i := range r.elems {
			all = append(all, r.key(i).id())
		}
		return true
	})
	if !slices.IsSorted(all) || len(all) != tr.n {
		t.Fatal("elements out of order")
	}
	for i := 1; i < len(all); i++ {
		if all[i-1] == all[i] {
			t.Fatal("an identifier twice")
		}
	}
	if h := tr.hint; h.l != nil {
		if !slices.Contains(leaves, h.l) || h.ri >= len(h.l.runs) || h.i > len(h.l.runs[h.ri].elems) {
			t.Fatal("the hint is not a gap of the tree")
		}
		if got := tr.pos(h); got != tr.hintPos {
			t.Fatalf("the hint's gap is at %d, recorded %d", got, tr.hintPos)
		}
	}
	for pos := 0; pos < tr.n; pos += 1 + tr.n/50 {
		id := tr.elemAt(pos).key().id()
		if id != all[pos] {
			t.Fatalf("elemAt(%d) = %v, want %v", pos, id, all[pos])
		}
		if got, ok := tr.search(keyOf(id)); !ok || got != pos {
			t.Fatalf("search(elemAt(%d)) = %d, %v", pos, got, ok)
		}
	}
	if tr.finger != nil && tr.start(tr.finger) != tr.fingerStart {
		// start answers from the finger; recompute it the long way.
		f := tr.finger
		tr.finger = nil
		want := tr.start(f)
		tr.finger = f
		if want != tr.fingerStart {
			t.Fatalf("finger starts at %d, recorded %d", want, tr.fingerStart)
		}
	}
}

// seeded returns a generator with a fresh seed, which the test prints if it fails.
func seeded(t *testing.T, stream uint64) (*rand.Rand, uint64) {
	seed := uint64(rand.Int64())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	})
	return rand.New(rand.NewPCG(seed, stream)), seed
}

// TestTreeInvariants edits replicas through every path of the tree (typing bursts that grow
// runs, inserts and deletes inside runs that split them, range deletes across runs and leaves,
// remote ops found by identifier, words deleted backwards from the last insert, bulk build)
// and checks every invariant along the way.
func TestTreeInvariants(t *testing.T) {
	rng, seed := seeded(t, 9)
	a := New(1, rand.NewPCG(seed, 1))
	b := New(2, rand.NewPCG(seed, 2))
	typedTo := map[*Doc]int{} // where each replica's last insert ended, if it was its last edit
	for step := range 20000 {
		d, other := a, b
		if rng.IntN(3) == 0 {
			d, other = b, a
		}
		var op Op
		var err error
		switch k := rng.IntN(10); {
		case k < 6 || d.Len() == 0:
			text := make([]rune, 1+rng.IntN(12))
			for i := range text {
				text[i] = rune('a' + rng.IntN(26))
			}
			pos := d.Len()
			if rng.IntN(4) > 0 {
				pos = rng.IntN(d.Len() + 1)
			}
			op, err = d.Insert(pos, string(text))
			typedTo[d] = pos + len(text)
		case k == 6 && typedTo[d] > 0:
			// Backspacing a word: the other replica removes what ends at its last change.
			n := min(typedTo[d], 1+rng.IntN(16))
			if op, err = d.Delete(typedTo[d]-n, n); err == nil && n > 1 {
				// The other replica applied d's insert last: its hint is where d's cursor is.
				h, hp := other.elems.hint, other.elems.hintPos
				if !other.elems.rewind(op.runs) || other.elems.hintPos != hp-n {
					t.Fatalf("step %d: the word deleted does not end at the other replica's hint", step)
				}
				other.elems.hint, other.elems.hintPos = h, hp // as it was, for Apply
			}
			typedTo[d] = 0
		default:
			pos := rng.IntN(d.Len())
			op, err = d.Delete(pos, 1+rng.IntN(min(d.Len()-pos, 1+rng.IntN(80))))
			typedTo[d] = 0
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Apply(op); err != nil {
			t.Fatal(err)
		}
		typedTo[other] = 0
		if step%250 == 0 || a.Len() < 3 {
			checkTree(t, &a.elems)
			checkTree(t, &b.elems)
			if a.Text() != b.Text() {
				t.Fatalf("step %d: replicas differ", step)
			}
		}
	}
	checkTree(t, &a.elems)
	var runs []run
	a.elems.eachRun(func(r *run) bool { runs = append(runs, *r); return true })
	var built tree
	built.build(runs)
	checkTree(t, &built)
	for a.Len() > 0 {
		pos := rng.IntN(a.Len())
		if _, err := a.Delete(pos, 1+rng.IntN(a.Len()-pos)); err != nil {
			t.Fatal(err)
		}
		checkTree(t, &a.elems)
	}
}

func TestAllocDeterministicStrategy(t *testing.T) {
	var pattern string
	for d := range 9 {
		pattern += fmt.Sprint(map[bool]string{true: "+", false: "-"}[boundaryPlus(d)])
	}
	if pattern != "++-++-++-" {
		t.Fatalf("strategy pattern %s, want ++-++-++- (docs/adr/0001)", pattern)
	}
}

// typedDoc returns a document of 3,000 inserts of 1 to 8 characters at random places, whose
// identifiers were drawn from r: gaps of every kind to allocate in.
func typedDoc(t *testing.T, rng *rand.Rand, r Rand) *Doc {
	d := New(1, r)
	for range 3000 {
		if _, err := d.Insert(rng.IntN(d.Len()+1), "abcdefgh"[:1+rng.IntN(8)]); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// TestAllocNextAgreesWithAlloc checks allocNext's shortcut: whenever it answers, it answers
// what alloc would, with the same randomness, the same identifier and the same room left.
func TestAllocNextAgreesWithAlloc(t *testing.T) {
	rng, seed := seeded(t, 3)
	d := typedDoc(t, rng, rand.NewPCG(seed, 4))
	shortcuts := 0
	for range 500 {
		gap := d.elems.gapAt(rng.IntN(d.Len() + 1))
		prev, next := gap.before(), gap.after()
		var room int64
		for c := uint32(1); c <= 40; c++ {
			a, n := rand.NewPCG(seed, uint64(c)), newSource(rand.NewPCG(seed, uint64(c)))
			want, wantRoom, err := alloc(prev, next, 9, c, DefaultBoundary, a)
			if err != nil {
				t.Fatal(err)
			}
			if got, gotRoom, ok := allocNext(prev, room, 9, c, DefaultBoundary, &n); ok {
				shortcuts++
				if got != want || gotRoom != wantRoom {
					t.Fatalf("allocNext %v (room %d), alloc %v (room %d)", got.id(), gotRoom, want.id(), wantRoom)
				}
			}
			if cmpKeys(prev, want) >= 0 || !next.none() && cmpKeys(want, next) >= 0 {
				t.Fatalf("%v not between %v and %v", want.id(), prev.id(), next.id())
			}
			prev, room = want, wantRoom
		}
	}
	if shortcuts == 0 {
		t.Fatal("allocNext never answered")
	}
}

// TestAllocRunAgreesWithAllocNext checks that allocRun gives what allocNext gives called again
// and again, drawing the same randomness, from a *rand.PCG and from another Rand.
func TestAllocRunAgreesWithAllocNext(t *testing.T) {
	rng, seed := seeded(t, 7)
	d := typedDoc(t, rng, rand.NewPCG(seed, 8))
	runs := 0
	for g := range 500 {
		gap := d.elems.gapAt(rng.IntN(d.Len() + 1))
		first, room, err := alloc(gap.before(), gap.after(), 9, 1, DefaultBoundary, rand.NewPCG(seed, 1))
		if err != nil {
			t.Fatal(err)
		}
		var a, b source
		if g%2 == 0 {
			a, b = newSource(rand.NewPCG(seed, uint64(g))), newSource(rand.NewPCG(seed, uint64(g)))
		} else {
			var s [32]byte
			s[0] = byte(g)
			a, b = newSource(rand.NewChaCha8(s)), newSource(rand.NewChaCha8(s))
		}
		n := 1 + rng.IntN(40)
		got, gotRoom := allocRun(nil, first, room, n, DefaultBoundary, &a)
		var want []uint32
		prev, wantRoom := first, room
		for c := uint32(2); len(want) < n; c++ {
			k, left, ok := allocNext(prev, wantRoom, 9, c, DefaultBoundary, &b)
			if !ok {
				break
			}
			want = append(want, k.last.digit)
			prev, wantRoom = k, left
		}
		if !slices.Equal(got, want) || gotRoom != wantRoom || a.Uint64() != b.Uint64() {
			t.Fatalf("allocRun %v (room %d), allocNext %v (room %d)", got, gotRoom, want, wantRoom)
		}
		runs += len(got)
	}
	if runs == 0 {
		t.Fatal("allocRun never answered")
	}
}

// TestTypingShortcutAllocatesAsAlloc types the same keystrokes into two replicas with the same
// randomness, one continuing each insert from the last one's room (Insert's shortcut), the
// other searching afresh each time: their identifiers must be the same.
func TestTypingShortcutAllocatesAsAlloc(t *testing.T) {
	seed := uint64(rand.Int64())
	rng := rand.New(rand.NewPCG(seed, 5))
	fast, slow := New(1, rand.NewPCG(seed, 6)), New(1, rand.NewPCG(seed, 6))
	shortcuts := 0
	for range 20000 {
		var pos int
		if rng.IntN(20) == 0 || fast.typedRoom == 0 {
			pos = rng.IntN(fast.Len() + 1) // jump
		} else {
			pos = fast.typedAt // type on
		}
		text := "abc"[:1+rng.IntN(3)]
		if rng.IntN(4) > 0 {
			text = text[:1]
		}
		if pos == fast.typedAt && fast.typedRoom >= 2 {
			shortcuts++
		}
		slow.typedRoom = 0
		a, errA := fast.Insert(pos, text)
		b, errB := slow.Insert(pos, text)
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if !slices.Equal(a.IDs(), b.IDs()) {
			t.Fatalf("seed %d: typing on gave %v, a fresh search %v", seed, a.IDs(), b.IDs())
		}
	}
	if shortcuts == 0 {
		t.Fatal("the shortcut never applied")
	}
}

// TestKeyComparisons checks cmpKeys and cmpFrom against the byte order of the identifiers they
// stand for, on keys that share long prefixes or are prefixes of one another (the cases the
// comparisons take shortcuts on), and that cmpFrom's shared bytes are a lower bound that a
// later comparison may skip.
func TestKeyComparisons(t *testing.T) {
	rng, _ := seeded(t, 11)
	lvl := func() []byte {
		// Few distinct values, so that keys often agree level by level and byte by byte.
		return appendLevel(nil, level{uint32(1 + rng.IntN(3)), SiteID(rng.IntN(2)), uint32(rng.IntN(2))})
	}
	randomID := func(base []byte) ID {
		id := slices.Clone(base[:tripleSize*rng.IntN(len(base)/tripleSize+1)])
		for range 1 + rng.IntN(4) {
			id = append(id, lvl()...)
		}
		return ID(id)
	}
	var base []byte
	for range 6 {
		base = append(base, lvl()...)
	}
	for range 20000 {
		a, b := randomID(base), randomID(base)
		want := strings.Compare(string(a), string(b))
		ka, kb := keyOf(a), keyOf(b)
		if got := cmpKeys(ka, kb); got != want {
			t.Fatalf("cmpKeys(%v, %v) = %d, want %d", a, b, got, want)
		}
		c, shared := cmpFrom(ka, kb, 0)
		if c != want || string(ka.prefix[:shared]) != string(kb.prefix[:shared]) {
			t.Fatalf("cmpFrom(%v, %v, 0) = %d, %d shared; want %d", a, b, c, shared, want)
		}
		if again, _ := cmpFrom(ka, kb, shared); again != want {
			t.Fatalf("cmpFrom(%v, %v, %d) = %d, want %d", a, b, shared, again, want)
		}
	}
}
