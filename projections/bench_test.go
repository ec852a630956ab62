package projections_test

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"github.com/palimpsest-editor/palimpsest/internal/traces"
	"github.com/palimpsest-editor/palimpsest/projections"
)

// traceOps turns an editing trace into real CRDT ops, as one editor would
// have sent them.
type traceOps struct {
	d   *crdt.Doc
	ops []eventlog.Op
}

func (e *traceOps) add(op crdt.Op, err error) error {
	if err != nil {
		return err
	}
	e.ops = append(e.ops, eventlog.Op{Site: uint32(op.Site), Counter: op.Counter, Author: "kleppmann", Payload: crdt.AppendOp(nil, &op)})
	return nil
}
func (e *traceOps) Insert(pos int, text string) error { return e.add(e.d.Insert(pos, text)) }
func (e *traceOps) Delete(pos, n int) error           { return e.add(e.d.Delete(pos, n)) }

// mixedOps makes edits of n documents, the i-th with about total/(i+1)/H
// ops (a Zipf-like mix: a few large documents, many small).
func mixedOps(t testing.TB, n, total int) map[string][]eventlog.Op {
	var h float64
	for i := range n {
		h += 1 / float64(i+1)
	}
	out := map[string][]eventlog.Op{}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range n {
		k := max(1, int(float64(total)/float64(i+1)/h))
		d := crdt.New(crdt.SiteID(i+1), rand.NewPCG(uint64(i), 0))
		ops := make([]eventlog.Op, 0, k)
		for range k {
			var op crdt.Op
			var err error
			if d.Len() > 10 && rng.IntN(5) == 0 {
				op, err = d.Delete(rng.IntN(d.Len()-1), 1)
			} else {
				op, err = d.Insert(rng.IntN(d.Len()+1), string(rune('a'+rng.IntN(26))))
			}
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, eventlog.Op{Site: uint32(op.Site), Counter: op.Counter, Author: "u", Payload: crdt.AppendOp(nil, &op)})
		}
		out[fmt.Sprintf("doc-%04d", i)] = ops
	}
	return out
}

// appendInterleaved appends every document's ops, the documents taking
// turns in chunks, from a few goroutines.
func appendInterleaved(t testing.TB, l *eventlog.Log, docs map[string][]eventlog.Op, chunk int) {
	ctx := ctxT(t, 10*time.Minute)
	ids := make([]string, 0, len(docs))
	for d := range docs {
		ids = append(ids, d)
	}
	slices.Sort(ids)
	work := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for id := range work {
				ops := docs[id]
				for len(ops) > 0 {
					n := min(chunk, len(ops))
					if _, err := l.Append(ctx, id, eventlog.Any, ops[:n]...); err != nil {
						t.Error(err)
						return
					}
					ops = ops[n:]
				}
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
}

// rawFetch reads every event of every partition with durable consumers in
// batches of size, as the projector does (the next batch fetched while the
// previous one is acknowledged), doing nothing with them; it returns events
// per second. expect holds each partition's event count.
func rawFetch(t testing.TB, l *eventlog.Log, expect map[int]uint64, size int) float64 {
	ctx := ctxT(t, 10*time.Minute)
	var total uint64
	for _, n := range expect {
		total += n
	}
	start := time.Now()
	var wg sync.WaitGroup
	for p, want := range expect {
		wg.Go(func() {
			name := fmt.Sprintf("raw-%d", p)
			cfg := eventlog.PartitionConsumerConfig{MaxAckPending: 4 * size}
			c, err := l.OpenPartitionConsumer(ctx, name, p, 0, cfg)
			if err != nil {
				t.Error(err)
				return
			}
			batches := make(chan *eventlog.Batch, 1)
			go func() {
				defer close(batches)
				var got, last uint64
				for got < want {
					b, err := c.Fetch(ctx, size, 50*time.Millisecond)
					if errors.Is(err, eventlog.ErrLostDelivery) {
						if c, err = l.OpenPartitionConsumer(ctx, name, p, last, cfg); err == nil {
							continue
						}
					}
					if err != nil {
						t.Error(err)
						return
					}
					if n := len(b.Events); n > 0 {
						got, last = got+uint64(n), b.Events[n-1].Seq
					}
					batches <- b
				}
			}()
			for b := range batches {
				if err := b.Ack(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds()
}

// partitionCounts says how many events each partition of l holds.
func partitionCounts(l *eventlog.Log, docs map[string][]eventlog.Op) map[int]uint64 {
	out := map[int]uint64{}
	for id, ops := range docs {
		out[l.PartitionOf(id)] += uint64(len(ops))
	}
	return out
}

// projectAll runs a projector into a fresh Postgres database until every
// partition's checkpoint reaches the head; it returns ops per second.
func projectAll(t testing.TB, l *eventlog.Log, pg projections.StateBackend, head uint64, batch int) (float64, *projections.Metrics) {
	m := projections.NewMetrics(nil)
	p, err := projections.New(projections.Config{Log: l, State: pg, BatchSize: batch, Metrics: m, CacheElements: 64 << 20, Logger: benchLogger})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop := run(t, p)
	defer stop()
	eventually(t, 10*time.Minute, func() error {
		if n := m.Events(); n < head {
			return fmt.Errorf("%d of %d events projected", n, head)
		}
		return nil
	})
	return float64(head) / time.Since(start).Seconds(), m
}

// BenchmarkProjection measures, in one run, the raw JetStream fetch rate
// and the projector's throughput into PostgreSQL (fold, one write per
// document per batch, commit, ack) as a ratio of it, for the automerge-paper
// trace as one document (259,778 ops) and for 1,000 documents of mixed
// size; then the rebuild of each from sequence 1; then the lag under a
// steady load. Run it with -benchtime 1x:
//
//	go test -run '^$' -bench Projection -benchtime 1x ./projections/
func BenchmarkProjection(b *testing.B) {
	tr, err := traces.Open("automerge-paper")
	if err != nil {
		b.Fatal(err)
	}
	ed := &traceOps{d: crdt.New(1, rand.NewPCG(1, 1))}
	if err := tr.Replay(ed); err != nil {
		b.Fatal(err)
	}
	workloads := []struct {
		name string
		docs map[string][]eventlog.Op
	}{
		{"automerge-paper", map[string][]eventlog.Op{"automerge-paper": ed.ops}},
		{"1000-docs-mixed", mixedOps(b, 1000, 250000)},
	}
	for _, wl := range workloads {
		b.Run(wl.name, func(b *testing.B) {
			for range b.N {
				benchWorkload(b, wl.name, wl.docs)
			}
		})
	}
	b.Run("steady-lag", func(b *testing.B) {
		for range b.N {
			steadyLag(b)
		}
	})
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
}

func benchWorkload(b *testing.B, name string, docs map[string][]eventlog.Op) {
	srv := startServer(b, b.TempDir())
	cfg := logConfig(16)
	cfg.MaxBatch = 1000
	l := connect(b, srv.ClientURL(), cfg)
	t0 := time.Now()
	appendInterleaved(b, l, docs, 1000)
	head, err := l.Head(ctxT(b, time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	progress("%s: appended %d events in %s", name, head, time.Since(t0).Round(time.Millisecond))
	raw := rawFetch(b, l, partitionCounts(l, docs), cmp.Or(benchBatch, 16384))
	progress("%s: raw fetch %.0f events/s", name, raw)
	pg := openPG(b, harness.SharedPostgres(b).NewDatabase(b))
	ops, _ := projectAll(b, l, pg, head, benchBatch)
	progress("%s: projection %.0f ops/s", name, ops)
	rs, err := projections.Rebuild(ctxT(b, 10*time.Minute), projections.RebuildConfig{Log: l, State: pg})
	if err != nil {
		b.Fatal(err)
	}
	rebuildRate := float64(rs.Events) / rs.Duration.Seconds()
	b.Logf("%s: %d events; raw fetch %.0f events/s; projection into Postgres %.0f ops/s (%.2f× raw); rebuild %s, %.0f events/s (%.2f× raw)",
		name, head, raw, ops, ops/raw, rs.Duration.Round(time.Millisecond), rebuildRate, rebuildRate/raw)
	b.ReportMetric(ops, "ops/s")
	b.ReportMetric(ops/raw, "x-raw")
	b.ReportMetric(rs.Duration.Seconds(), "rebuild-s")
	b.ReportMetric(rebuildRate/raw, "rebuild-x-raw")
}

// steadyLag appends at a steady 20,000 ops/s to 200 documents for 5 s with
// a projector running, and reports how long after its append each op was
// committed (the lag), as p50, p99 and max.
func steadyLag(b *testing.B) {
	const rate, seconds, docsN = 20000, 5, 200
	srv := startServer(b, b.TempDir())
	l := connect(b, srv.ClientURL(), logConfig(16))
	pg := openPG(b, harness.SharedPostgres(b).NewDatabase(b))
	m := projections.NewMetrics(nil)
	p, err := projections.New(projections.Config{Log: l, State: pg, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	stop := run(b, p)
	defer stop()
	docs := mixedOps(b, docsN, rate*seconds*4)
	type mark struct {
		at    time.Time
		count uint64
	}
	var mu sync.Mutex
	var appended []mark
	var total atomic.Uint64
	ctx := ctxT(b, time.Minute)
	var wg sync.WaitGroup
	const chunk, writers = 100, 8 // ops a document appends at a time; writers, each owning docs i ≡ w mod writers
	per := time.Duration(float64(time.Second) * chunk * writers / rate)
	ids := make([]string, 0, len(docs))
	for d := range docs {
		ids = append(ids, d)
	}
	slices.Sort(ids)
	queues := make([][]eventlog.Op, len(ids)) // Each writer owns the documents i ≡ w mod writers.
	for i, id := range ids {
		queues[i] = docs[id]
	}
	for w := range writers {
		wg.Go(func() {
			tick := time.NewTicker(per)
			defer tick.Stop()
			end := time.Now().Add(seconds * time.Second)
			i := w
			for now := range tick.C {
				if now.After(end) {
					return
				}
				k := i % len(ids)
				id := ids[k]
				i += writers
				ops := queues[k]
				if len(ops) == 0 {
					continue
				}
				c := min(chunk, len(ops))
				queues[k] = ops[c:]
				if _, err := l.Append(ctx, id, eventlog.Any, ops[:c]...); err != nil {
					b.Error(err)
					return
				}
				n := total.Add(uint64(c))
				mu.Lock()
				appended = append(appended, mark{time.Now(), n})
				mu.Unlock()
			}
		})
	}
	var seen []mark
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			seen = append(seen, mark{time.Now(), m.Events()})
			if total.Load() > 0 && m.Events() >= total.Load() && time.Since(seen[0].at) > seconds*time.Second {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	wg.Wait()
	<-done
	var lags []time.Duration
	j := 0
	slices.SortFunc(appended, func(a, b mark) int { return int(a.count) - int(b.count) })
	for _, a := range appended {
		for j < len(seen) && seen[j].count < a.count {
			j++
		}
		if j == len(seen) {
			break
		}
		lags = append(lags, max(0, seen[j].at.Sub(a.at)))
	}
	slices.Sort(lags)
	if len(lags) == 0 {
		b.Fatal("no lag samples")
	}
	pct := func(q float64) time.Duration { return lags[min(len(lags)-1, int(q*float64(len(lags))))] }
	b.Logf("steady load (aimed at %d ops/s) to %d documents for %ds: %d ops appended; lag p50 %s, p99 %s, max %s", rate, docsN, seconds, total.Load(),
		pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lags[len(lags)-1].Round(time.Millisecond))
	b.ReportMetric(pct(0.99).Seconds(), "steady-lag-p99-s")
}

var benchBatch = func() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_BATCH")); err == nil {
		return n
	}
	return 0
}()

var benchLogger = func() *slog.Logger {
	if os.Getenv("BENCH_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.Default()
}()
