package eventlog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
)

func groupLog(t *testing.T) (*eventlog.Server, *eventlog.Log) {
	t.Helper()
	srv, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := eventlog.Connect(ctx, srv.ClientURL(), eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return srv, l
}

// checkDoc reads doc's history and checks that it holds exactly the ops of
// site with counters 1..n, in order, each once, with a prev chain without gaps.
func checkDoc(t *testing.T, l *eventlog.Log, doc string, sites map[uint32]uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var prev uint64
	next := map[uint32]uint32{}
	err := l.Read(ctx, doc, 1, 0, func(ev eventlog.Event, err error) error {
		if err != nil {
			return err
		}
		if ev.PrevSeq != prev {
			t.Errorf("%s: event %d has prev %d, the previous event is %d", doc, ev.Seq, ev.PrevSeq, prev)
		}
		prev = ev.Seq
		next[ev.Site]++
		if ev.Counter != next[ev.Site] {
			t.Errorf("%s: site %d counter %d at %d, want %d", doc, ev.Site, ev.Counter, ev.Seq, next[ev.Site])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for s, n := range sites {
		if next[s] != n {
			t.Errorf("%s: site %d has %d ops in the log, want %d", doc, s, next[s], n)
		}
	}
}

func ops(site uint32, from, to uint32) []eventlog.Op {
	var out []eventlog.Op
	for c := from; c <= to; c++ {
		out = append(out, eventlog.Op{Site: site, Counter: c, Author: "ada", Payload: []byte(fmt.Sprintf("op %d-%d", site, c))})
	}
	return out
}

// One atomic batch for three documents: every op once, each document's
// prev chain intact, resends come back as duplicates.
func TestAppendGroup(t *testing.T) {
	_, l := groupLog(t)
	ctx := context.Background()
	groups := []eventlog.DocOps{{Doc: "a", Ops: ops(1, 1, 3)}, {Doc: "b", Ops: ops(2, 1, 1)}, {Doc: "c", Ops: ops(3, 1, 2)}}
	res := l.AppendGroup(ctx, groups)
	var seqs []uint64
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", groups[i].Doc, r.Err)
		}
		for _, a := range r.Res {
			if a.Duplicate || a.Seq == 0 {
				t.Fatalf("%s: %+v", groups[i].Doc, r.Res)
			}
			seqs = append(seqs, a.Seq)
		}
	}
	if len(seqs) != 6 {
		t.Fatalf("%d results, want 6", len(seqs))
	}
	// Again, plus new ops: the old ones are duplicates, the new ones land.
	groups[0].Ops = ops(1, 1, 4)
	groups[2].Ops = ops(3, 2, 3)
	res = l.AppendGroup(ctx, groups)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", groups[i].Doc, r.Err)
		}
	}
	if a := res[0].Res; !a[0].Duplicate || !a[2].Duplicate || a[2].Seq == 0 || a[3].Duplicate {
		t.Errorf("resend of a: %+v", a)
	}
	if a := res[1].Res; !a[0].Duplicate {
		t.Errorf("resend of b: %+v", a)
	}
	checkDoc(t, l, "a", map[uint32]uint32{1: 4})
	checkDoc(t, l, "b", map[uint32]uint32{2: 1})
	checkDoc(t, l, "c", map[uint32]uint32{3: 3})
}

// Another writer moves a document on behind this log's back: the group's
// batch is refused, every document is appended on its own, nothing is lost
// or doubled.
func TestAppendGroupFallsBack(t *testing.T) {
	srv, l := groupLog(t)
	ctx := context.Background()
	if res := l.AppendGroup(ctx, []eventlog.DocOps{{Doc: "a", Ops: ops(1, 1, 1)}, {Doc: "b", Ops: ops(2, 1, 1)}}); res[0].Err != nil || res[1].Err != nil {
		t.Fatal(res)
	}
	other, err := eventlog.Connect(ctx, srv.ClientURL(), eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Append(ctx, "a", eventlog.Any, ops(9, 1, 2)...); err != nil {
		t.Fatal(err)
	}
	res := l.AppendGroup(ctx, []eventlog.DocOps{{Doc: "a", Ops: ops(1, 1, 2)}, {Doc: "b", Ops: ops(2, 2, 2)}})
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("group %d: %v", i, r.Err)
		}
	}
	checkDoc(t, l, "a", map[uint32]uint32{1: 2, 9: 2})
	checkDoc(t, l, "b", map[uint32]uint32{2: 2})
}

// Group commits and single appends race on the same documents from two
// logs (two processes): every op lands once, in its site's order.
func TestAppendGroupConcurrent(t *testing.T) {
	srv, l := groupLog(t)
	ctx := context.Background()
	other, err := eventlog.Connect(ctx, srv.ClientURL(), eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	docs := []string{"a", "b", "c", "d"}
	const rounds = 40
	var wg sync.WaitGroup
	for w := range 3 { // Three group writers, sites 1-3 on every document.
		wg.Add(1)
		go func() {
			defer wg.Done()
			site := uint32(w + 1)
			for c := uint32(1); c <= rounds; c++ {
				var g []eventlog.DocOps
				for _, d := range docs {
					g = append(g, eventlog.DocOps{Doc: d, Ops: ops(site, c, c)})
				}
				lg := l
				if w == 2 {
					lg = other
				}
				for i, r := range lg.AppendGroup(ctx, g) {
					if r.Err != nil {
						t.Errorf("site %d round %d %s: %v", site, c, g[i].Doc, r.Err)
						return
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // And one writer op by op, site 4.
		defer wg.Done()
		for c := uint32(1); c <= rounds; c++ {
			for _, d := range docs {
				if _, err := other.Append(ctx, d, eventlog.Any, ops(4, c, c)...); err != nil {
					t.Errorf("site 4: %v", err)
					return
				}
			}
		}
	}()
	wg.Wait()
	for _, d := range docs {
		checkDoc(t, l, d, map[uint32]uint32{1: rounds, 2: rounds, 3: rounds, 4: rounds})
	}
}
