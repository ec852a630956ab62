package projections_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/kvstate"
	"github.com/palimpsest-editor/palimpsest/projections/objsnap"
	"github.com/palimpsest-editor/palimpsest/projections/pgstate"
	"github.com/palimpsest-editor/palimpsest/projections/redisread"
	"github.com/palimpsest-editor/palimpsest/projections/s3snap"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(runChild())
	}
	harness.Main(m)
}

func openPG(t testing.TB, dsn string) *pgstate.Backend {
	t.Helper()
	b, err := pgstate.Open(ctxT(t, time.Minute), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// TestProjectPostgresS3Redis folds real edits of 30 documents, with poison
// events among them, into Postgres, S3 snapshots and Redis; the state equals
// a plain fold of the log byte for byte, each poison event is a dead
// letter, every snapshot plus the log's tail after it equals the state, and
// the read model holds the current text.
func TestProjectPostgresS3Redis(t *testing.T) {
	srv := startServer(t, t.TempDir())
	l := connect(t, srv.ClientURL(), logConfig(4))
	ctx := ctxT(t, 3*time.Minute)
	pg := openPG(t, harness.SharedPostgres(t).NewDatabase(t))
	mc, err := harness.SharedMinIO(t).Client()
	if err != nil {
		t.Fatal(err)
	}
	snaps := s3snap.New(mc, harness.SharedMinIO(t).NewBucket(t), "")
	r := harness.SharedRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: r.Addr(), DB: r.NewDB(t)})
	t.Cleanup(func() { rc.Close() })
	rm := redisread.New(rc, "", time.Hour)
	metrics := projections.NewMetrics(nil)

	w := newWriter(t, l, 1)
	for i := range 30 {
		w.edit(ctx, fmt.Sprintf("doc-%d", i), 20+i*7)
	}
	w.poison(ctx, "doc-3", 999, 1)
	w.poison(ctx, "doc-7", 998, 1)

	p, err := projections.New(projections.Config{Log: l, State: pg, Snapshots: snaps, SnapshotEvery: 40, SnapshotRetain: 100,
		ReadModel: rm, BatchSize: 64, LeaseTTL: 3 * time.Second, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	run(t, p)
	for i := range 30 {
		w.edit(ctx, fmt.Sprintf("doc-%d", i), 30)
	}
	w.poison(ctx, "doc-11", 997, 1)
	want := refFold(t, l)
	waitState(t, pg, want, time.Minute)

	dls, err := l.DeadLetters(ctx, "projector-state")
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 3 {
		t.Fatalf("%d dead letters, want 3: %+v", len(dls), dls)
	}
	for _, d := range dls {
		if d.Reason == "" || d.Seq == 0 || string(d.Data) == "" {
			t.Fatalf("dead letter without reason, sequence or event: %+v", d)
		}
	}

	// The read model catches up with the state.
	eventually(t, 30*time.Second, func() error {
		for doc, st := range want {
			e, found, err := rm.Get(ctx, doc)
			if err != nil || !found || e.Version != st.Version || e.Text != st.Text {
				return fmt.Errorf("read model of %s: %+v %v %v, want version %d", doc, e.Version, found, err, st.Version)
			}
		}
		return nil
	})

	// Snapshot plus tail equals the full fold, for every document.
	for doc, st := range want {
		seq, state, err := snaps.Nearest(ctx, doc, st.Version)
		if errors.Is(err, projections.ErrNoSnapshot) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		d, err := crdt.LoadSnapshot(state, 0, rand.NewPCG(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		err = l.Read(ctx, doc, seq+1, 0, func(ev eventlog.Event, err error) error {
			if err != nil {
				return nil
			}
			if op, err := crdt.DecodeOp(ev.Payload); err == nil && uint32(op.Site) == ev.Site {
				_, _ = d.Apply(op)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if string(d.AppendSnapshot(nil)) != string(st.State) {
			t.Fatalf("%s: snapshot at %d plus the tail differs from the full fold", doc, seq)
		}
	}
}

// TestFoldTwiceIdentical folds the same log into two empty stores (Postgres
// and JetStream KV) one after the other: both equal the reference fold byte
// for byte.
func TestFoldTwiceIdentical(t *testing.T) {
	srv := startServer(t, t.TempDir())
	l := connect(t, srv.ClientURL(), logConfig(3))
	ctx := ctxT(t, 3*time.Minute)
	w := newWriter(t, l, 2)
	for i := range 12 {
		w.edit(ctx, fmt.Sprintf("d%d", i), 100)
	}
	want := refFold(t, l)
	kv, err := kvstate.Open(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	backends := []projections.StateBackend{openPG(t, harness.SharedPostgres(t).NewDatabase(t)), openPG(t, harness.SharedPostgres(t).NewDatabase(t)), kv}
	for i, be := range backends {
		p, err := projections.New(projections.Config{Log: l, State: be, Name: fmt.Sprintf("fold%d", i), BatchSize: 100 + 37*i})
		if err != nil {
			t.Fatal(err)
		}
		stop := run(t, p)
		waitState(t, be, want, time.Minute)
		stop()
	}
}

// TestEmbeddedDefaults runs the projector on JetStream alone (KV state,
// Object Store snapshots, in-process read model), with two projector
// processes sharing the partitions: both get some, and when one stops the
// other takes its partitions over and finishes the fold.
func TestEmbeddedDefaults(t *testing.T) {
	srv := startServer(t, t.TempDir())
	l := connect(t, srv.ClientURL(), logConfig(6))
	ctx := ctxT(t, 3*time.Minute)
	kv, err := kvstate.Open(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := objsnap.Open(ctx, l, "snapshots")
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, l, 3)
	for i := range 20 {
		w.edit(ctx, fmt.Sprintf("e%d", i), 50)
	}
	cfg := projections.Config{Log: l, State: kv, Snapshots: snaps, SnapshotEvery: 25, LeaseTTL: 1500 * time.Millisecond, BatchSize: 32}
	var ps []*projections.Projector
	var stops []context.CancelFunc
	var ms []*projections.Metrics
	for i := range 2 {
		cfg.Owner = fmt.Sprintf("proc%d", i)
		cfg.Metrics = projections.NewMetrics(nil)
		p, err := projections.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ps, ms = append(ps, p), append(ms, cfg.Metrics)
		stops = append(stops, run(t, p))
	}
	// Both own partitions: three each once balanced.
	eventually(t, 30*time.Second, func() error {
		a, b := ms[0].Owned(), ms[1].Owned()
		if a != 3 || b != 3 {
			return fmt.Errorf("partitions owned: %d and %d", a, b)
		}
		return nil
	})
	waitState(t, kv, refFold(t, l), time.Minute)
	stops[0]()
	for i := range 20 {
		w.edit(ctx, fmt.Sprintf("e%d", i), 20)
	}
	want := refFold(t, l)
	waitState(t, kv, want, time.Minute)
	if ms[1].Owned() != 6 {
		t.Fatalf("the remaining process owns %d partitions, want 6", ms[1].Owned())
	}
	eventually(t, 30*time.Second, func() error {
		for doc, st := range want {
			if e, found, _ := ps[1].ReadModel().Get(ctx, doc); !found || e.Version != st.Version || e.Text != st.Text {
				return fmt.Errorf("in-process read model of %s: version %d, want %d", doc, e.Version, st.Version)
			}
		}
		return nil
	})
	if _, _, err := snaps.Nearest(ctx, "e0", want["e0"].Version); err != nil {
		t.Fatalf("no snapshot of e0: %v", err)
	}
}
