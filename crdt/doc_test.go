package crdt_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/palimpsest-editor/palimpsest/crdt"
)

func newDoc(site crdt.SiteID) *crdt.Doc { return crdt.New(site, rand.NewPCG(uint64(site), 7)) }

func mustInsert(t *testing.T, d *crdt.Doc, pos int, text string) crdt.Op {
	t.Helper()
	op, err := d.Insert(pos, text)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func mustDelete(t *testing.T, d *crdt.Doc, pos, n int) crdt.Op {
	t.Helper()
	op, err := d.Delete(pos, n)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func mustApply(t *testing.T, d *crdt.Doc, op crdt.Op) []crdt.Change {
	t.Helper()
	cs, err := d.Apply(op)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestLocalEdits(t *testing.T) {
	d := newDoc(1)
	mustInsert(t, d, 0, "héllo")
	mustInsert(t, d, 5, " wörld😀")
	mustInsert(t, d, 0, ">")
	mustDelete(t, d, 1, 1)
	if got, want := d.Text(), ">éllo wörld😀"; got != want {
		t.Fatalf("text %q, want %q", got, want)
	}
	if d.Len() != 12 {
		t.Fatalf("len %d, want 12 code points", d.Len())
	}
	for pos := range d.Len() {
		id, err := d.IDAt(pos)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := d.IndexOf(id); !ok || got != pos {
			t.Fatalf("IndexOf(IDAt(%d)) = %d, %v", pos, got, ok)
		}
	}
	if op := mustInsert(t, d, 3, ""); !op.IsZero() {
		t.Fatalf("empty insert returned %+v", op)
	}
}

func TestLocalEditErrorsChangeNothing(t *testing.T) {
	d := newDoc(1)
	mustInsert(t, d, 0, "abc")
	before := d.AppendSnapshot(nil)
	for _, tc := range []struct {
		name string
		edit func() error
		code crdt.Code
	}{
		{"insert past end", func() error { _, err := d.Insert(4, "x"); return err }, crdt.CodeRange},
		{"insert negative", func() error { _, err := d.Insert(-1, "x"); return err }, crdt.CodeRange},
		{"insert bad utf8", func() error { _, err := d.Insert(0, "\xff"); return err }, crdt.CodeBadText},
		{"delete past end", func() error { _, err := d.Delete(2, 2); return err }, crdt.CodeRange},
		{"delete negative", func() error { _, err := d.Delete(0, -1); return err }, crdt.CodeRange},
		{"id past end", func() error { _, err := d.IDAt(3); return err }, crdt.CodeRange},
	} {
		err := tc.edit()
		if !errors.Is(err, crdt.ErrInvalid) || crdt.CodeOf(err) != tc.code {
			t.Errorf("%s: error %v, want code %s", tc.name, err, tc.code)
		}
	}
	if after := d.AppendSnapshot(nil); !slices.Equal(before, after) {
		t.Fatal("a refused edit changed the document")
	}
}

func TestApplyTwiceIsOnce(t *testing.T) {
	a, b := newDoc(1), newDoc(2)
	ops := []crdt.Op{mustInsert(t, a, 0, "hello"), mustDelete(t, a, 1, 2), mustInsert(t, a, 1, "EY")}
	for _, op := range ops {
		first := mustApply(t, b, op)
		if len(first) == 0 {
			t.Fatalf("op %d:%d changed nothing the first time", op.Site, op.Counter)
		}
		if again := mustApply(t, b, op); len(again) != 0 {
			t.Fatalf("op %d:%d changed %v the second time", op.Site, op.Counter, again)
		}
	}
	if a.Text() != b.Text() || b.Text() != "hEYlo" {
		t.Fatalf("texts %q and %q, want hEYlo", a.Text(), b.Text())
	}
}

func TestDeleteBeforeInsertIsHeld(t *testing.T) {
	a, b, c := newDoc(1), newDoc(2), newDoc(3)
	ins := mustInsert(t, a, 0, "xyz")
	mustApply(t, b, ins)
	del := mustDelete(t, b, 1, 1) // b deletes a's "y"
	// c hears b's delete before a's insert.
	if cs := mustApply(t, c, del); len(cs) != 0 {
		t.Fatalf("early delete changed %v", cs)
	}
	if _, dels := c.Pending(); dels != 1 {
		t.Fatalf("%d held deletes, want 1", dels)
	}
	cs := mustApply(t, c, ins)
	if c.Text() != "xz" {
		t.Fatalf("text %q, want xz", c.Text())
	}
	want := []crdt.Change{{Kind: crdt.Inserted, Index: 0, Text: "xz"}}
	if !slices.Equal(cs, want) {
		t.Fatalf("changes %v, want %v", cs, want)
	}
	if _, dels := c.Pending(); dels != 0 {
		t.Fatalf("%d held deletes left", dels)
	}
	// The insert again (a duplicate) must not resurrect "y".
	mustApply(t, c, ins)
	if c.Text() != "xz" {
		t.Fatalf("duplicate insert resurrected a deleted element: %q", c.Text())
	}
}

func TestOutOfOrderOpsAreHeld(t *testing.T) {
	a, b := newDoc(1), newDoc(2)
	op1 := mustInsert(t, a, 0, "ab")
	op2 := mustInsert(t, a, 2, "cd")
	op3 := mustDelete(t, a, 0, 1)
	if cs := mustApply(t, b, op3); len(cs) != 0 {
		t.Fatalf("op ahead of its site changed %v", cs)
	}
	mustApply(t, b, op2)
	if held, _ := b.Pending(); held != 2 {
		t.Fatalf("%d held ops, want 2", held)
	}
	cs := mustApply(t, b, op1)
	if b.Text() != "bcd" || b.Text() != a.Text() {
		t.Fatalf("text %q, want %q", b.Text(), a.Text())
	}
	want := []crdt.Change{
		{Kind: crdt.Inserted, Index: 0, Text: "abcd"},
		{Kind: crdt.Deleted, Index: 0, Text: "a"},
	}
	if !slices.Equal(cs, want) {
		t.Fatalf("changes %v, want %v", cs, want)
	}
}

// TestChangesPatchAView replays random remote ops into a plain rune slice using only the
// returned changes; the view must always equal the document.
func TestChangesPatchAView(t *testing.T) {
	seed := uint64(rand.Int64())
	rng := rand.New(rand.NewPCG(seed, 1))
	writers := []*crdt.Doc{newDoc(1), newDoc(2), newDoc(3)}
	reader := newDoc(9)
	var view []rune
	for step := range 3000 {
		w := writers[rng.IntN(len(writers))]
		var op crdt.Op
		if w.Len() > 0 && rng.IntN(3) == 0 {
			pos := rng.IntN(w.Len())
			op = mustDelete(t, w, pos, 1+rng.IntN(min(5, w.Len()-pos)))
		} else {
			op = mustInsert(t, w, rng.IntN(w.Len()+1), string(rune('a'+rng.IntN(26)))+"é")
		}
		for _, other := range writers {
			if other != w {
				mustApply(t, other, op)
			}
		}
		for _, c := range mustApply(t, reader, op) {
			r := []rune(c.Text)
			if c.Kind == crdt.Inserted {
				view = slices.Insert(view, c.Index, r...)
			} else {
				if got := string(view[c.Index : c.Index+len(r)]); got != c.Text {
					t.Fatalf("seed %d step %d: change deletes %q, view holds %q", seed, step, c.Text, got)
				}
				view = slices.Delete(view, c.Index, c.Index+len(r))
			}
		}
		if string(view) != reader.Text() {
			t.Fatalf("seed %d step %d: view %q, doc %q", seed, step, string(view), reader.Text())
		}
	}
}

func TestApplyRejectsInvalidOps(t *testing.T) {
	a := newDoc(1)
	good := mustInsert(t, a, 0, "abc")
	del := mustDelete(t, a, 0, 2)
	forged := good
	forged.Site = 7 // origins no longer match the op's site
	short := good
	short.Text = "ab"
	ids := del.IDs()
	unsorted := crdt.NewOp(del.Kind, del.Site, del.Counter, []crdt.ID{ids[1], ids[0]}, "")
	zeroCounter := good
	zeroCounter.Counter = 0
	badID := crdt.NewOp(del.Kind, del.Site, del.Counter, []crdt.ID{"short"}, "")
	badPrefix := crdt.NewOpFromRuns(del.Kind, del.Site, del.Counter,
		[]crdt.Run{{Prefix: "0123456789a", Site: 1, Counter: 1, Digits: []uint32{4}}}, "")
	endsInZero := crdt.NewOp(del.Kind, del.Site, del.Counter,
		[]crdt.ID{crdt.MakeID(crdt.Triple{Digit: 0, Site: 1, Counter: 1})}, "")
	emptyRun := crdt.NewOpFromRuns(del.Kind, del.Site, del.Counter, []crdt.Run{{Site: 1, Counter: 1}}, "")
	textOnDelete := del
	textOnDelete.Text = "x"
	ownFuture := crdt.NewOp(del.Kind, del.Site, del.Counter,
		[]crdt.ID{crdt.MakeID(crdt.Triple{Digit: 5, Site: 1, Counter: del.Counter + 3})}, "")
	for _, tc := range []struct {
		name string
		op   crdt.Op
		code crdt.Code
	}{
		{"forged origin", forged, crdt.CodeBadOp},
		{"text shorter than ids", short, crdt.CodeBadOp},
		{"unsorted ids", unsorted, crdt.CodeBadOp},
		{"counter zero", zeroCounter, crdt.CodeBadOp},
		{"malformed id", badID, crdt.CodeBadID},
		{"malformed prefix", badPrefix, crdt.CodeBadID},
		{"run without elements", emptyRun, crdt.CodeBadOp},
		{"id ending in digit 0", endsInZero, crdt.CodeBadID},
		{"delete with text", textOnDelete, crdt.CodeBadOp},
		{"delete of its own later element", ownFuture, crdt.CodeBadOp},
		{"unknown kind", crdt.NewOpFromRuns(9, 1, 1, good.Runs(), good.Text), crdt.CodeBadOp},
		{"no elements", crdt.Op{Kind: crdt.OpDelete, Site: 1, Counter: 1}, crdt.CodeBadOp},
	} {
		b := newDoc(2)
		_, err := b.Apply(tc.op)
		if crdt.CodeOf(err) != tc.code {
			t.Errorf("%s: error %v, want code %s", tc.name, err, tc.code)
		}
		if b.Len() != 0 || len(b.Clock()) != 0 {
			t.Errorf("%s: a refused op changed the document", tc.name)
		}
	}
}

// TestAllocationStaysBetweenNeighbours inserts at random places, including between
// concurrently allocated neighbours, and checks the document order after every step.
func TestAllocationStaysBetweenNeighbours(t *testing.T) {
	seed := uint64(rand.Int64())
	rng := rand.New(rand.NewPCG(seed, 2))
	a, b := newDoc(1), newDoc(2)
	for step := range 4000 {
		// Both sites insert at the same position concurrently, then exchange.
		pos := rng.IntN(a.Len() + 1)
		opA := mustInsert(t, a, pos, "a")
		opB := mustInsert(t, b, pos, "b")
		mustApply(t, a, opB)
		mustApply(t, b, opA)
		ids := idsOf(a)
		if !slices.IsSorted(ids) {
			t.Fatalf("seed %d step %d: identifiers out of order", seed, step)
		}
		for _, id := range ids {
			if err := id.Validate(); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
		}
	}
	if a.Text() != b.Text() {
		t.Fatalf("seed %d: diverged", seed)
	}
}

func TestIDValidate(t *testing.T) {
	for _, tc := range []struct {
		id    crdt.ID
		valid bool
	}{
		{crdt.MakeID(crdt.Triple{Digit: 1, Site: 1, Counter: 1}), true},
		{crdt.MakeID(crdt.Triple{Digit: 0, Site: 1, Counter: 1}, crdt.Triple{Digit: 5, Site: 2, Counter: 3}), true},
		{"", false},
		{"abc", false},
		{crdt.MakeID(crdt.Triple{Digit: 0, Site: 1, Counter: 1}), false},
		{crdt.MakeID(crdt.Triple{Digit: 1 << 30, Site: 1, Counter: 1}), false},
		{crdt.MakeID(slices.Repeat([]crdt.Triple{{Digit: 1, Site: 1, Counter: 1}}, crdt.MaxDepth+1)...), false},
	} {
		if err := tc.id.Validate(); (err == nil) != tc.valid {
			t.Errorf("Validate(%v) = %v, want valid=%v", tc.id, err, tc.valid)
		}
	}
	a := crdt.MakeID(crdt.Triple{Digit: 3, Site: 1, Counter: 9})
	b := crdt.MakeID(crdt.Triple{Digit: 3, Site: 2, Counter: 1})
	c := crdt.MakeID(crdt.Triple{Digit: 3, Site: 1, Counter: 9}, crdt.Triple{Digit: 1, Site: 1, Counter: 1})
	if a.Compare(c) >= 0 || c.Compare(b) >= 0 {
		t.Fatal("want prefix < extension < larger site at the same digit")
	}
}
