package projections

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/traces"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

type traceEditor struct {
	d   *crdt.Doc
	evs []eventlog.Delivery
}

func (e *traceEditor) add(op crdt.Op, err error) error {
	if err != nil {
		return err
	}
	seq := uint64(len(e.evs) + 1)
	e.evs = append(e.evs, eventlog.Delivery{Event: eventlog.Event{Seq: seq, PrevSeq: seq - 1, Stored: time.Unix(0, int64(seq)), Event: schemas.Event{
		Type: schemas.EventOp, Doc: "paper", Site: uint32(op.Site), Counter: op.Counter, Payload: crdt.AppendOp(nil, &op)}}})
	return nil
}
func (e *traceEditor) Insert(pos int, text string) error { return e.add(e.d.Insert(pos, text)) }
func (e *traceEditor) Delete(pos, n int) error           { return e.add(e.d.Delete(pos, n)) }

// BenchmarkFoldAutomergePaper is the fold alone, no I/O: the automerge-paper
// trace in batches of 16,384 events, each batch ending in the document's
// state encoding and text, as the projector commits them.
func BenchmarkFoldAutomergePaper(b *testing.B) {
	tr, err := traces.Open("automerge-paper")
	if err != nil {
		b.Fatal(err)
	}
	ed := &traceEditor{d: crdt.New(1, rand.NewPCG(1, 1))}
	if err := tr.Replay(ed); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		f := folder{cache: newCache(10, 1<<30), now: time.Now}
		store := &memStore{docs: map[string]DocState{}}
		for i := 0; i < len(ed.evs); i += 16384 {
			out, err := f.fold(context.Background(), store, 0, 0, ed.evs[i:min(i+16384, len(ed.evs))], nil)
			if err != nil {
				b.Fatal(err)
			}
			if out.ops == 0 {
				b.Fatal("nothing folded")
			}
		}
	}
	b.ReportMetric(float64(len(ed.evs))*float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
