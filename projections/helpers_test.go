package projections_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/projections"
)

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// startServer starts an embedded NATS server on a random loopback port
// with its data in dir.
func startServer(t testing.TB, dir string) *eventlog.Server {
	t.Helper()
	s, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

var layout atomic.Int64

// logConfig is a layout of its own, so tests on one server do not meet.
func logConfig(partitions int) eventlog.Config {
	n := layout.Add(1)
	return eventlog.Config{Stream: fmt.Sprintf("P%d", n), SubjectPrefix: fmt.Sprintf("p%d", n),
		MarksBucket: fmt.Sprintf("marks%d", n), Partitions: partitions}
}

func connect(t testing.TB, url string, cfg eventlog.Config) *eventlog.Log {
	t.Helper()
	l, err := eventlog.Connect(ctxT(t, 30*time.Second), url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// writer makes real edits: per document, two replicas take turns editing
// and each op is appended to the log.
type writer struct {
	t    testing.TB
	l    *eventlog.Log
	rng  *rand.Rand
	reps map[string][2]*crdt.Doc
	turn map[string]int
}

func newWriter(t testing.TB, l *eventlog.Log, seed uint64) *writer {
	return &writer{t: t, l: l, rng: rand.New(rand.NewPCG(seed, 1)), reps: map[string][2]*crdt.Doc{}, turn: map[string]int{}}
}

// edit appends n ops to doc.
func (w *writer) edit(ctx context.Context, doc string, n int) {
	w.t.Helper()
	r, ok := w.reps[doc]
	if !ok {
		h := uint32(len(w.reps)) * 2
		r = [2]*crdt.Doc{crdt.New(crdt.SiteID(h+1), rand.NewPCG(uint64(h), 1)), crdt.New(crdt.SiteID(h+2), rand.NewPCG(uint64(h), 2))}
		w.reps[doc] = r
	}
	var ops []eventlog.Op
	for range n {
		a := r[w.turn[doc]%2]
		b := r[(w.turn[doc]+1)%2]
		if w.rng.IntN(8) == 0 {
			w.turn[doc]++
		}
		var op crdt.Op
		var err error
		if a.Len() > 0 && w.rng.IntN(4) == 0 {
			pos := w.rng.IntN(a.Len())
			op, err = a.Delete(pos, min(1+w.rng.IntN(3), a.Len()-pos))
		} else {
			op, err = a.Insert(w.rng.IntN(a.Len()+1), string(rune('a'+w.rng.IntN(26)))+strings.Repeat("é", w.rng.IntN(2)))
		}
		if err != nil {
			w.t.Fatal(err)
		}
		if _, err := b.Apply(op); err != nil {
			w.t.Fatal(err)
		}
		ops = append(ops, eventlog.Op{Site: uint32(op.Site), Counter: op.Counter, Author: fmt.Sprintf("user%d", op.Site), Payload: crdt.AppendOp(nil, &op)})
	}
	w.append(ctx, doc, ops)
}

func (w *writer) append(ctx context.Context, doc string, ops []eventlog.Op) {
	w.t.Helper()
	for len(ops) > 0 {
		n := min(len(ops), 200)
		if _, err := w.l.Append(ctx, doc, eventlog.Any, ops[:n]...); err != nil {
			w.t.Fatalf("append to %s: %v", doc, err)
		}
		ops = ops[n:]
	}
}

// poison appends an event whose payload is not an op.
func (w *writer) poison(ctx context.Context, doc string, site, counter uint32) {
	w.t.Helper()
	w.append(ctx, doc, []eventlog.Op{{Site: site, Counter: counter, Payload: []byte("not an op")}})
}

// refFold folds the whole log the simplest way, as the projector must: per
// document, every decodable op whose origin matches its event, in log order.
func refFold(t testing.TB, l *eventlog.Log) map[string]projections.DocState {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	head, err := l.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reps := map[string]*crdt.Doc{}
	out := map[string]projections.DocState{}
	err = l.ReadAll(ctx, 1, head, func(ev eventlog.Event, err error) error {
		if err != nil {
			return nil
		}
		op, err := crdt.DecodeOp(ev.Payload)
		if err != nil || uint32(op.Site) != ev.Site || op.Counter != ev.Counter {
			return nil
		}
		d := reps[ev.Doc]
		if d == nil {
			d = crdt.New(0, rand.NewPCG(0, 0))
			reps[ev.Doc] = d
		}
		if _, err := d.Apply(op); err != nil {
			return nil
		}
		st := out[ev.Doc]
		st.Doc, st.Version, st.Ops, st.Author, st.Updated = ev.Doc, ev.Seq, st.Ops+1, ev.Author, ev.Stored.UTC().Truncate(time.Microsecond)
		out[ev.Doc] = st
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for doc, d := range reps {
		st := out[doc]
		st.Text, st.State = d.Text(), d.AppendSnapshot(nil)
		out[doc] = st
	}
	return out
}

// diffStates says how got differs from want ("" when equal byte for byte).
func diffStates(want, got map[string]projections.DocState) string {
	var b strings.Builder
	if len(want) != len(got) {
		fmt.Fprintf(&b, "%d documents, want %d; ", len(got), len(want))
	}
	for doc, w := range want {
		g, ok := got[doc]
		switch {
		case !ok:
			fmt.Fprintf(&b, "%s missing; ", doc)
		case g.Version != w.Version || g.Ops != w.Ops || g.Text != w.Text || !bytes.Equal(g.State, w.State) ||
			g.Author != w.Author || !g.Updated.Equal(w.Updated):
			fmt.Fprintf(&b, "%s: version %d ops %d text %d chars state %d bytes, want %d %d %d %d (text equal %v, state equal %v); ",
				doc, g.Version, g.Ops, len(g.Text), len(g.State), w.Version, w.Ops, len(w.Text), len(w.State), g.Text == w.Text, bytes.Equal(g.State, w.State))
		}
		if b.Len() > 2000 {
			break
		}
	}
	return b.String()
}

func loadAll(t testing.TB, s projections.StateStore, docs map[string]projections.DocState) map[string]projections.DocState {
	t.Helper()
	ids := make([]string, 0, len(docs))
	for d := range docs {
		ids = append(ids, d)
	}
	got, err := s.Load(ctxT(t, time.Minute), ids)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// waitState waits until backend's live store holds exactly want.
func waitState(t testing.TB, be projections.StateBackend, want map[string]projections.DocState, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s, err := be.Live(ctxT(t, time.Minute))
		var diff string
		if err == nil {
			diff = diffStates(want, loadAll(t, s, want))
			if diff == "" {
				return
			}
		} else {
			diff = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("state not equal to the fold of the log within %s: %s", within, diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", within, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// run runs p until the test ends.
func run(t testing.TB, p *projections.Projector) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}
