package read

import (
	"math/rand/v2"
	"testing"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/internal/traces"
)

// BenchmarkSegmentText: the text at the end of a segment of 2,048 events
// of automerge-paper, from its base text (about 76,000 code points).
func BenchmarkSegmentText(b *testing.B) {
	tr, err := traces.Open("automerge-paper")
	if err != nil {
		b.Fatal(err)
	}
	ed := &paperEditor{}
	for i := range ed.reps {
		ed.reps[i] = crdt.New(crdt.SiteID(i+1), rand.NewPCG(uint64(i), 1))
	}
	if err := tr.Replay(ed); err != nil {
		b.Fatal(err)
	}
	d := replica()
	from := len(ed.ops) / 2
	for i := range from {
		op, _ := crdt.DecodeOp(ed.ops[i].Payload)
		d.Apply(op)
	}
	g := &segment{from: uint64(from), base: d.Text()}
	for i := from; i < from+2048; i++ {
		op, _ := crdt.DecodeOp(ed.ops[i].Payload)
		cs, _ := d.Apply(op)
		g.evs = append(g.evs, segEvent{seq: uint64(i + 1), changes: cs})
	}
	b.ResetTimer()
	for range b.N {
		if text, _, ok := g.textAt(uint64(from + 2048)); !ok || text != d.Text() {
			b.Fatal("wrong text")
		}
	}
}
