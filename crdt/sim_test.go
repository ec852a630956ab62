package crdt_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/palimpsest-editor/palimpsest/crdt"
)

// network simulates replicas that edit concurrently and exchange ops over links that keep each
// origin's order (unless reorder is set), duplicate messages, and partition and heal.
type network struct {
	rng      *rand.Rand
	docs     []*crdt.Doc
	inbox    [][][]crdt.Op // inbox[to][from]: ops in flight, FIFO per origin
	cut      []bool        // cut[i]: replica i is partitioned away
	reorder  bool          // deliver out of origin order too (the held path)
	alphabet []rune
}

func newNetwork(seed uint64, replicas int) *network {
	n := &network{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		inbox:    make([][][]crdt.Op, replicas),
		cut:      make([]bool, replicas),
		alphabet: []rune("abcdefgh ñé€😀\n"),
	}
	for i := range replicas {
		n.docs = append(n.docs, crdt.New(crdt.SiteID(i+1), rand.NewPCG(seed, uint64(i))))
		n.inbox[i] = make([][]crdt.Op, replicas)
	}
	return n
}

// edit makes one random local edit at replica i and sends it to everyone else.
func (n *network) edit(t *testing.T, i int) {
	d := n.docs[i]
	var op crdt.Op
	var err error
	if d.Len() > 0 && n.rng.IntN(3) == 0 {
		pos := n.rng.IntN(d.Len())
		op, err = d.Delete(pos, 1+n.rng.IntN(min(3, d.Len()-pos)))
	} else {
		k := 1 + n.rng.IntN(4)
		text := make([]rune, k)
		for j := range text {
			text[j] = n.alphabet[n.rng.IntN(len(n.alphabet))]
		}
		op, err = d.Insert(n.rng.IntN(d.Len()+1), string(text))
	}
	if err != nil {
		t.Fatalf("local edit at replica %d: %v", i, err)
	}
	for to := range n.docs {
		if to != i {
			n.inbox[to][i] = append(n.inbox[to][i], op)
		}
	}
}

// deliver hands replica `to` one op from `from`, maybe duplicated; it reports whether one moved.
func (n *network) deliver(t *testing.T, to, from int) bool {
	q := n.inbox[to][from]
	if len(q) == 0 || n.cut[to] != n.cut[from] {
		return false
	}
	k := 0
	if n.reorder {
		k = n.rng.IntN(len(q))
	}
	op := q[k]
	if n.rng.IntN(5) == 0 {
		// Duplicate: deliver now and keep a copy for later.
		n.inbox[to][from] = append(n.inbox[to][from], op)
	}
	n.inbox[to][from] = slices.Delete(n.inbox[to][from], k, k+1)
	if _, err := n.docs[to].Apply(op); err != nil {
		t.Fatalf("replica %d applying %d:%d: %v", to, op.Site, op.Counter, err)
	}
	return true
}

func (n *network) step(t *testing.T) {
	switch r := n.rng.IntN(20); {
	case r < 8:
		n.edit(t, n.rng.IntN(len(n.docs)))
	case r == 8:
		n.cut[n.rng.IntN(len(n.docs))] = true
	case r == 9:
		clear(n.cut)
	default:
		n.deliver(t, n.rng.IntN(len(n.docs)), n.rng.IntN(len(n.docs)))
	}
}

// settle heals the partitions and delivers everything still in flight.
func (n *network) settle(t *testing.T) {
	clear(n.cut)
	for moved := true; moved; {
		moved = false
		for to := range n.docs {
			for from := range n.docs {
				for n.deliver(t, to, from) {
					moved = true
				}
			}
		}
	}
}

// checkConverged demands equal text, identifiers and clocks, and nothing left held.
func checkConverged(t *testing.T, docs []*crdt.Doc) {
	t.Helper()
	want, wantIDs := docs[0].Text(), idsOf(docs[0])
	for i, d := range docs {
		if got := d.Text(); got != want {
			t.Fatalf("replica %d text %q, replica 0 %q", i, got, want)
		}
		if !slices.Equal(idsOf(d), wantIDs) {
			t.Fatalf("replica %d identifiers differ from replica 0", i)
		}
		if fmt.Sprint(d.Clock()) != fmt.Sprint(docs[0].Clock()) {
			t.Fatalf("replica %d clock %v, replica 0 %v", i, d.Clock(), docs[0].Clock())
		}
		if ops, dels := d.Pending(); ops != 0 || dels != 0 {
			t.Fatalf("replica %d still holds %d ops and %d deletes", i, ops, dels)
		}
	}
}

func idsOf(d *crdt.Doc) []crdt.ID {
	var ids []crdt.ID
	d.IDs(func(id crdt.ID, _ rune) bool {
		ids = append(ids, id)
		return true
	})
	return ids
}

func runSimulation(t *testing.T, seed uint64, replicas, steps int, reorder bool) {
	t.Helper()
	n := newNetwork(seed, replicas)
	n.reorder = reorder
	for range steps {
		n.step(t)
	}
	n.settle(t)
	checkConverged(t, n.docs)
}

// TestConvergence runs thousands of seeded simulations of 5+ replicas editing concurrently
// under duplicated, delayed and partitioned delivery that keeps each origin's order.
func TestConvergence(t *testing.T) {
	iterations := 3000
	if testing.Short() {
		iterations = 300
	}
	base := uint64(rand.Int64())
	for i := range iterations {
		seed := base + uint64(i)
		replicas := 5 + i%3
		t.Run("", func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("reproduce with seed %d, %d replicas", seed, replicas)
				}
			}()
			runSimulation(t, seed, replicas, 120, false)
		})
		if t.Failed() {
			return
		}
	}
}

// TestConvergenceReordered delivers every origin's ops in any order, which exercises holding
// ops until their predecessors arrive and deletes that overtake their inserts.
func TestConvergenceReordered(t *testing.T) {
	iterations := 2000
	if testing.Short() {
		iterations = 200
	}
	base := uint64(rand.Int64())
	for i := range iterations {
		seed := base + uint64(i)
		t.Run("", func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("reproduce with seed %d", seed)
				}
			}()
			runSimulation(t, seed, 5, 120, true)
		})
		if t.Failed() {
			return
		}
	}
}

// TestSimulationLong runs a few long sessions, so identifiers grow deep.
func TestSimulationLong(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		runSimulation(t, seed, 6, 5000, seed == 3)
	}
}
