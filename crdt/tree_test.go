package crdt

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkTree verifies every invariant of the counted B+tree: counts, last identifiers, parent
// links, leaf links, order, and the element total.
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
			if len(n.ids) == 0 || len(n.ids) > leafCap || len(n.ids) != len(n.runes) {
				t.Fatalf("leaf of %d ids, %d runes", len(n.ids), len(n.runes))
			}
			leaves = append(leaves, n)
			return len(n.ids)
		}
		if len(n.children) == 0 || len(n.children) > innerCap {
			t.Fatalf("internal node of %d children", len(n.children))
		}
		total := 0
		for i, c := range n.children {
			if c.parent != n {
				t.Fatal("child's parent link is wrong")
			}
			size := walk(c)
			if n.counts[i] != size {
				t.Fatalf("count %d, subtree holds %d", n.counts[i], size)
			}
			if n.lasts[i] != c.last() {
				t.Fatal("stale last identifier")
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
	tr.each(func(id ID, _ rune) bool { all = append(all, id); return true })
	if !slices.IsSorted(all) || len(all) != tr.n {
		t.Fatal("elements out of order")
	}
	for pos := 0; pos < tr.n; pos += 1 + tr.n/50 {
		id, _ := tr.at(pos)
		if got, ok := tr.search(id); !ok || got != pos {
			t.Fatalf("search(at(%d)) = %d, %v", pos, got, ok)
		}
	}
}

func testID(k uint32) ID {
	return MakeID(Triple{Digit: k>>16 + 1, Site: 1, Counter: k}, Triple{Digit: k&0xffff + 1, Site: 2, Counter: k})
}

// TestTreeInvariants grows and shrinks trees through every path (by position, by identifier,
// through the finger, bulk build) and checks every invariant along the way.
func TestTreeInvariants(t *testing.T) {
	seed := uint64(rand.Int64())
	rng := rand.New(rand.NewPCG(seed, 9))
	defer func() {
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	}()
	var tr tree
	used := map[uint32]bool{}
	for step := range 30000 {
		switch op := rng.IntN(10); {
		case op < 6 || tr.n == 0:
			k := rng.Uint32N(1 << 24)
			if used[k] {
				continue
			}
			used[k] = true
			id := testID(k)
			var l *node
			var i int
			if tr.root != nil {
				var found bool
				l, i, found = tr.find(id)
				if found {
					t.Fatal("found an identifier never inserted")
				}
			}
			tr.insert(l, i, id, rune('a'+k%26))
		case op < 9:
			pos := rng.IntN(tr.n)
			id, _ := tr.remove(tr.elemAt(pos))
			if _, found := tr.search(id); found {
				t.Fatal("removed identifier still found")
			}
		default:
			// Remove a run, as a range delete does.
			pos := rng.IntN(tr.n)
			for k := 0; k < 40 && pos < tr.n; k++ {
				tr.remove(tr.elemAt(pos))
			}
		}
		if step%500 == 0 || tr.n < 3 {
			checkTree(t, &tr)
		}
	}
	checkTree(t, &tr)
	var ids []ID
	var runes []rune
	tr.each(func(id ID, r rune) bool { ids, runes = append(ids, id), append(runes, r); return true })
	var built tree
	built.build(ids, runes)
	checkTree(t, &built)
	for tr.n > 0 {
		tr.remove(tr.elemAt(rng.IntN(tr.n)))
	}
	checkTree(t, &tr)
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
