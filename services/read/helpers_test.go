package read

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"github.com/palimpsest-editor/palimpsest/projections"
)

func TestMain(m *testing.M) { harness.Main(m) }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// startLog starts an embedded NATS server with its data in a temp dir and
// opens a log on it with a layout of its own.
func startLog(t testing.TB) *eventlog.Log {
	t.Helper()
	srv, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	l, err := eventlog.Connect(ctxT(t, 30*time.Second), srv.ClientURL(), logConfig(4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

var layout atomic.Int64

func logConfig(partitions int) eventlog.Config {
	n := layout.Add(1)
	return eventlog.Config{Stream: fmt.Sprintf("R%d", n), SubjectPrefix: fmt.Sprintf("r%d", n),
		MarksBucket: fmt.Sprintf("rmarks%d", n), Partitions: partitions, MaxBatch: 1000}
}

// writer makes real edits: per document, two replicas (two authors) take
// turns editing, and each op is appended to the log.
type writer struct {
	t    testing.TB
	l    *eventlog.Log
	rng  *rand.Rand
	reps map[string][2]*crdt.Doc
	turn map[string]int
	site uint32
	// lastInsert is each site's last op when it was an insert: its
	// counter and span.
	lastInsert map[crdt.SiteID][2]uint32
}

func newWriter(t testing.TB, l *eventlog.Log, seed uint64) *writer {
	return &writer{t: t, l: l, rng: rand.New(rand.NewPCG(seed, 1)), reps: map[string][2]*crdt.Doc{}, turn: map[string]int{}, site: 1000, lastInsert: map[crdt.SiteID][2]uint32{}}
}

// edit appends n ops to doc in one batch and returns their sequences.
func (w *writer) edit(ctx context.Context, doc string, n int) []uint64 {
	w.t.Helper()
	r, ok := w.reps[doc]
	if !ok {
		h := uint32(len(w.reps)) * 2
		r = [2]*crdt.Doc{crdt.New(crdt.SiteID(h+1), rand.NewPCG(uint64(h), w.rng.Uint64())), crdt.New(crdt.SiteID(h+2), rand.NewPCG(uint64(h), w.rng.Uint64()))}
		w.reps[doc] = r
	}
	var ops []eventlog.Op
	for range n {
		if w.rng.IntN(6) == 0 {
			w.turn[doc]++
		}
		a, b := r[w.turn[doc]%2], r[(w.turn[doc]+1)%2]
		var op crdt.Op
		var err error
		if a.Len() > 0 && w.rng.IntN(3) == 0 {
			pos := w.rng.IntN(a.Len())
			op, err = a.Delete(pos, min(1+w.rng.IntN(4), a.Len()-pos))
		} else {
			op, err = a.Insert(w.rng.IntN(a.Len()+1), strings.Repeat(string(rune('a'+w.rng.IntN(26))), 1+w.rng.IntN(3))+strings.Repeat("é", w.rng.IntN(2)))
		}
		if err != nil {
			w.t.Fatal(err)
		}
		if _, err := b.Apply(op); err != nil {
			w.t.Fatal(err)
		}
		delete(w.lastInsert, op.Site)
		if op.Kind == crdt.OpInsert {
			w.lastInsert[op.Site] = [2]uint32{op.Counter, op.Span()}
		}
		ops = append(ops, eventlog.Op{Site: uint32(op.Site), Counter: op.Counter, Author: fmt.Sprintf("user%d", op.Site), Payload: crdt.AppendOp(nil, &op)})
	}
	return w.append(ctx, doc, ops)
}

// poison appends an event whose payload is not an op, from a site of its own.
func (w *writer) poison(ctx context.Context, doc string) uint64 {
	w.site++
	return w.append(ctx, doc, []eventlog.Op{{Site: w.site, Counter: 1, Author: "mallory", Payload: []byte("not an op")}})[0]
}

// forge appends a valid insert op of one of doc's sites whose counter falls
// inside that site's last insert: the log takes it (its counter is above
// the site's last op's), the CRDT refuses it (its counters are spent). It
// returns false when no site of doc has a last insert of two or more.
func (w *writer) forge(ctx context.Context, doc string) bool {
	reps, ok := w.reps[doc]
	if !ok {
		return false
	}
	for _, r := range reps {
		li, ok := w.lastInsert[r.Site()]
		if !ok || li[1] < 2 {
			continue
		}
		c := li[0] + 1
		op := crdt.NewOp(crdt.OpInsert, r.Site(), c,
			[]crdt.ID{crdt.MakeID(crdt.Triple{Digit: 7, Site: r.Site(), Counter: c})}, "X")
		delete(w.lastInsert, r.Site())
		w.append(ctx, doc, []eventlog.Op{{Site: uint32(op.Site), Counter: c, Author: "forger", Payload: crdt.AppendOp(nil, &op)}})
		return true
	}
	return false
}

func (w *writer) append(ctx context.Context, doc string, ops []eventlog.Op) []uint64 {
	w.t.Helper()
	res, err := w.l.Append(ctx, doc, eventlog.Any, ops...)
	if err != nil {
		w.t.Fatalf("append to %s: %v", doc, err)
	}
	seqs := make([]uint64, len(res))
	for i, r := range res {
		seqs[i] = r.Seq
	}
	return seqs
}

// oracle is a document replayed from its first event: its state after
// every one of its events.
type oracle struct {
	doc      string
	versions []uint64 // in order
	at       map[uint64]oracleState
	events   map[uint64]eventlog.Event
	dots     map[crdt.Dot]uint64 // element origin -> inserting event
	final    *crdt.Doc
}

type oracleState struct {
	text  string
	ids   string // the identifiers, concatenated
	snap  []byte // set for every snapEvery-th version
	index int
}

// replay folds doc's whole log into an oracle, snapshotting every
// snapEvery-th version (0: never).
func replay(t testing.TB, l *eventlog.Log, doc string, snapEvery int) *oracle {
	t.Helper()
	o := &oracle{doc: doc, at: map[uint64]oracleState{}, events: map[uint64]eventlog.Event{}, dots: map[crdt.Dot]uint64{}, final: replica()}
	err := l.Read(ctxT(t, time.Minute), doc, 1, 0, func(ev eventlog.Event, evErr error) error {
		if op, ok := oracleApply(o.final, &ev, evErr); ok && op.Kind == crdt.OpInsert {
			for i := range op.Len() {
				if dot := (crdt.Dot{Site: op.Site, Counter: op.Counter + uint32(i)}); o.dots[dot] == 0 {
					o.dots[dot] = ev.Seq // A repeat of spent counters is a no-op.
				}
			}
		}
		st := oracleState{text: o.final.Text(), ids: idString(o.final), index: len(o.versions)}
		if snapEvery > 0 && (len(o.versions)+1)%snapEvery == 0 {
			st.snap = o.final.AppendSnapshot(nil)
		}
		o.versions = append(o.versions, ev.Seq)
		o.at[ev.Seq] = st
		o.events[ev.Seq] = ev
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// oracleApply is the projector's rule (projections/fold.go), written
// again: the ops of events that decode and whose op matches the event's site
// and counter are applied; everything else changes nothing.
func oracleApply(d *crdt.Doc, ev *eventlog.Event, evErr error) (crdt.Op, bool) {
	if evErr != nil {
		return crdt.Op{}, false
	}
	op, err := crdt.DecodeOp(ev.Payload)
	if err != nil || uint32(op.Site) != ev.Site || op.Counter != ev.Counter {
		return crdt.Op{}, false
	}
	_, err = d.Apply(op)
	return op, err == nil
}

func idString(d *crdt.Doc) string {
	var b strings.Builder
	d.IDs(func(id crdt.ID, _ rune) bool {
		b.WriteString(string(id))
		return true
	})
	return b.String()
}

// fold folds doc's events into the state store, as the projector does, and
// returns the committed state.
func fold(t testing.TB, l *eventlog.Log, state projections.StateBackend, doc string) projections.DocState {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	o := replay(t, l, doc, 0)
	last := o.versions[len(o.versions)-1]
	ev := o.events[last]
	st := projections.DocState{Doc: doc, Version: last, Ops: uint64(len(o.versions)), Updated: ev.Stored.UTC(), Author: ev.Author,
		Text: o.final.Text(), State: o.final.AppendSnapshot(nil)}
	store, err := state.Live(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Commit(ctx, &projections.Commit{Docs: []projections.DocState{st}}); err != nil {
		t.Fatal(err)
	}
	return st
}

// logBuffer is a slog handler target that tests can search.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}
