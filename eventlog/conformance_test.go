package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

func TestConformanceEmbedded(t *testing.T) {
	runConformance(t, embedded(t))
}

func TestConformanceCluster(t *testing.T) {
	b, _ := cluster(t)
	runConformance(t, b)
}

// runConformance is the one suite every backend must pass.
func runConformance(t *testing.T, b *backend) {
	t.Run("AppendAndRead", func(t *testing.T) { testAppendAndRead(t, b) })
	t.Run("PartitionAgreesWithServer", func(t *testing.T) { testPartitions(t, b) })
	t.Run("DedupInsideWindow", func(t *testing.T) { testDedupInsideWindow(t, b) })
	t.Run("DedupBeyondWindow", func(t *testing.T) { testDedupBeyondWindow(t, b) })
	t.Run("ConcurrentWritersOneWins", func(t *testing.T) { testOneWins(t, b) })
	t.Run("RangeAndTimeReads", func(t *testing.T) { testReads(t, b) })
	t.Run("AsyncGroupCommit", func(t *testing.T) { testAsync(t, b) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, b) })
	t.Run("CounterGaps", func(t *testing.T) { testCounterGaps(t, b) })
	t.Run("OpenIsIdempotent", func(t *testing.T) { testOpenIdempotent(t, b) })
	// Last: it restarts the servers.
	t.Run("SubscribeAcrossRestart", func(t *testing.T) { testSubscribeRestart(t, b) })
}

func testAppendAndRead(t *testing.T, b *backend) {
	l := b.open(t, b.config())
	ctx := ctxT(t, 30*time.Second)
	if _, err := l.LastSeq(ctx, "doc1"); !errors.Is(err, eventlog.ErrUnknownDocument) {
		t.Fatalf("LastSeq of a new document: %v, want ErrUnknownDocument", err)
	}
	res, err := l.Append(ctx, "doc1", 0, op(1, 1), op(1, 2), op(2, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].Seq == 0 || res[1].Seq != res[0].Seq+1 || res[2].Seq != res[1].Seq+1 {
		t.Fatalf("batch sequences %+v, want three consecutive", res)
	}
	other, err := l.Append(ctx, "doc2", eventlog.Any, op(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	more, err := l.Append(ctx, "doc1", res[2].Seq, op(1, 3))
	if err != nil {
		t.Fatal(err)
	}
	last, err := l.LastSeq(ctx, "doc1")
	if err != nil || last != more[0].Seq {
		t.Fatalf("LastSeq = %d, %v; want %d", last, err, more[0].Seq)
	}
	evs := readAll(t, l, "doc1")
	wantSeq := []uint64{res[0].Seq, res[1].Seq, res[2].Seq, more[0].Seq}
	wantPrev := []uint64{0, res[0].Seq, res[1].Seq, res[2].Seq}
	if len(evs) != 4 {
		t.Fatalf("read %d events, want 4", len(evs))
	}
	for i, e := range evs {
		if e.Seq != wantSeq[i] || e.PrevSeq != wantPrev[i] || e.Doc != "doc1" || e.Type != schemas.EventOp ||
			e.Partition != l.PartitionOf("doc1") || e.Time == 0 || string(e.Payload) != string(op(e.Site, e.Counter).Payload) {
			t.Errorf("event %d = %+v; want seq %d prev %d", i, e, wantSeq[i], wantPrev[i])
		}
	}
	if evs[3].OpID != "1-3" {
		t.Errorf("default op id %q, want 1-3", evs[3].OpID)
	}
	if other[0].Seq <= res[2].Seq || other[0].Seq >= more[0].Seq {
		t.Errorf("doc2's event %d is not between doc1's", other[0].Seq)
	}
}

func testPartitions(t *testing.T, b *backend) {
	cfg := b.config()
	l := b.open(t, cfg)
	ctx := ctxT(t, 30*time.Second)
	nc, err := nats.Connect(b.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for i := range 64 {
		doc := fmt.Sprintf("doc-%d_%x", i, i*7919)
		res, err := l.Append(ctx, doc, eventlog.Any, op(1, 1))
		if err != nil {
			t.Fatal(err)
		}
		// The server's transform chose the stored subject; PartitionOf must agree.
		m, err := s.GetMsg(ctx, res[0].Seq)
		if err != nil {
			t.Fatal(err)
		}
		want := l.Subjects().Stored(doc)
		if m.Subject != want {
			t.Fatalf("server stored %s under %s; PartitionOf says %s", doc, m.Subject, want)
		}
		seen[l.PartitionOf(doc)] = true
	}
	if len(seen) < 6 {
		t.Errorf("64 documents landed in only %d of 8 partitions", len(seen))
	}
	// A partition subscriber sees exactly its partition's documents.
	sub, err := l.SubscribePartition(ctx, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	want := 0
	for i := range 64 {
		if l.PartitionOf(fmt.Sprintf("doc-%d_%x", i, i*7919)) == 3 {
			want++
		}
	}
	for range want {
		e, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e.Partition != 3 || l.PartitionOf(e.Doc) != 3 {
			t.Fatalf("partition 3 delivered %s of partition %d", e.Doc, e.Partition)
		}
	}
}

func testDedupInsideWindow(t *testing.T, b *backend) {
	l := b.open(t, b.config())
	l2 := b.open(t, b.config()) // Another stream, to check ids are per document.
	_ = l2
	ctx := ctxT(t, 30*time.Second)
	first, err := l.Append(ctx, "d", eventlog.Any, op(5, 10), op(5, 11))
	if err != nil {
		t.Fatal(err)
	}
	// The same ops again, from this log and from a fresh one (no cached marks).
	again, err := l.Append(ctx, "d", eventlog.Any, op(5, 10), op(5, 11))
	if err != nil {
		t.Fatal(err)
	}
	fresh := b.open(t, l.Config())
	again2, err := fresh.Append(ctx, "d", eventlog.Any, op(5, 11), op(5, 12))
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Duplicate || !again[1].Duplicate || again[1].Seq != first[1].Seq {
		t.Errorf("resend: %+v, want duplicates (the last with seq %d)", again, first[1].Seq)
	}
	if !again2[0].Duplicate || again2[1].Duplicate {
		t.Errorf("fresh log resend: %+v, want [dup, new]", again2)
	}
	// Same op id in another document is not a duplicate.
	other, err := l.Append(ctx, "e", eventlog.Any, op(5, 10))
	if err != nil || other[0].Duplicate {
		t.Fatalf("same op id in another document: %+v %v", other, err)
	}
	if n := len(readAll(t, l, "d")); n != 3 {
		t.Errorf("document has %d events, want 3", n)
	}
}

func testDedupBeyondWindow(t *testing.T, b *backend) {
	cfg := b.config()
	cfg.DuplicateWindow = 300 * time.Millisecond
	cfg.MarksEvery = 1 << 20 // Never write marks back during the test: the new log must rebuild them from the log.
	cfg.MarksIdle = time.Hour
	l := b.open(t, cfg)
	ctx := ctxT(t, 60*time.Second)
	orig, err := l.Append(ctx, "d", eventlog.Any, op(9, 1), op(9, 2), op(9, 3))
	if err != nil {
		t.Fatal(err)
	}
	// A probe message with its own id, published just after; once JetStream
	// forgets it, it has forgotten the ops' ids too.
	nc, err := nats.Connect(b.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	probe := func() (bool, error) {
		ack, err := js.Publish(ctx, cfg.SubjectPrefix+".doc.probe", []byte("x"), jetstream.WithMsgID("probe-id"))
		if err != nil {
			return false, err
		}
		return ack.Duplicate, nil
	}
	if dup, err := probe(); err != nil || dup {
		t.Fatalf("first probe: dup=%v %v", dup, err)
	}
	eventually(t, 20*time.Second, func() error {
		dup, err := probe()
		if err != nil || dup {
			return fmt.Errorf("JetStream still remembers the probe id (%v)", err)
		}
		return nil
	})

	// The window has passed. A resend through the same log (cached marks)...
	res, err := l.Append(ctx, "d", eventlog.Any, op(9, 3))
	if err != nil || !res[0].Duplicate || res[0].Seq != orig[2].Seq {
		t.Fatalf("resend beyond the window: %+v %v, want duplicate at %d", res, err, orig[2].Seq)
	}
	// ...and through a new log that has no marks in the bucket (as after a
	// crash before they were written) and must rebuild them from the log.
	fresh := b.open(t, cfg)
	res, err = fresh.Append(ctx, "d", eventlog.Any, op(9, 1), op(9, 2), op(9, 3), op(9, 4))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if !res[i].Duplicate {
			t.Errorf("op %d resent beyond the window was appended again: %+v", i, res)
		}
	}
	if res[3].Duplicate || res[3].Seq <= orig[2].Seq {
		t.Errorf("new op: %+v", res[3])
	}
	// With marks written back, a third log starts from them.
	l.Close()
	fresh.Close()
	third := b.open(t, cfg)
	res, err = third.Append(ctx, "d", eventlog.Any, op(9, 4))
	if err != nil || !res[0].Duplicate {
		t.Fatalf("third log: %+v %v", res, err)
	}
	if n := len(readAll(t, third, "d")); n != 4 {
		t.Errorf("document has %d events, want 4", n)
	}
}

func testOneWins(t *testing.T, b *backend) {
	cfg := b.config()
	first := b.open(t, cfg)
	ctx := ctxT(t, 60*time.Second)
	base, err := first.Append(ctx, "race", eventlog.Any, op(100, 1))
	if err != nil {
		t.Fatal(err)
	}
	const writers = 8
	for round := range 5 {
		expect, err := first.LastSeq(ctx, "race")
		if err != nil {
			t.Fatal(err)
		}
		logs := make([]*eventlog.Log, writers)
		for i := range logs {
			logs[i] = b.open(t, cfg)
		}
		var wg sync.WaitGroup
		results := make([]error, writers)
		seqs := make([]uint64, writers)
		start := make(chan struct{})
		for i := range writers {
			wg.Go(func() {
				<-start
				res, err := logs[i].Append(ctx, "race", expect, op(uint32(i+1), uint32(round+1)))
				results[i] = err
				if err == nil {
					seqs[i] = res[0].Seq
				}
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		var winner uint64
		for i, err := range results {
			var se *eventlog.SequenceError
			switch {
			case err == nil:
				wins++
				winner = seqs[i]
			case errors.As(err, &se) && errors.Is(err, eventlog.ErrWrongSequence) && se.Expected == expect:
			default:
				t.Fatalf("writer %d: %v", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d writers won with the same expected sequence, want 1", round, wins)
		}
		for i, err := range results {
			var se *eventlog.SequenceError
			if errors.As(err, &se) && se.Actual != winner {
				t.Errorf("writer %d told the last sequence is %d; the winner wrote %d", i, se.Actual, winner)
			}
		}
	}
	if evs := readAll(t, first, "race"); len(evs) != 6 || evs[0].Seq != base[0].Seq {
		t.Errorf("document has %d events, want 6", len(evs))
	}
}

func testReads(t *testing.T, b *backend) {
	l := b.open(t, b.config())
	ctx := ctxT(t, 30*time.Second)
	var seqs []uint64
	for i := range 10 {
		res, err := l.Append(ctx, "r", eventlog.Any, op(1, uint32(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, res[0].Seq)
		if _, err := l.Append(ctx, "noise", eventlog.Any, op(1, uint32(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	all := readAll(t, l, "r")
	collect := func(read func(fn func(eventlog.Event, error) error) error) []uint64 {
		var got []uint64
		if err := read(func(e eventlog.Event, err error) error {
			if err != nil {
				return err
			}
			if e.Doc != "r" {
				t.Errorf("read returned an event of %s", e.Doc)
			}
			got = append(got, e.Seq)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, tc := range []struct {
		from, to uint64
		want     []uint64
	}{
		{0, 0, seqs},
		{seqs[2], seqs[5], seqs[2:6]},
		{seqs[2] + 1, seqs[5] - 1, seqs[3:5]}, // Bounds between the document's sequences.
		{seqs[9], 0, seqs[9:]},
		{seqs[9] + 1, 0, nil},
		{seqs[4], seqs[4], seqs[4:5]},
	} {
		got := collect(func(fn func(eventlog.Event, error) error) error { return l.Read(ctx, "r", tc.from, tc.to, fn) })
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Read(%d, %d) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	// By time: from the 7th event's stored time on.
	got := collect(func(fn func(eventlog.Event, error) error) error { return l.ReadSince(ctx, "r", all[6].Stored, fn) })
	if len(got) < 4 || got[len(got)-1] != seqs[9] || got[0] > seqs[6] {
		t.Errorf("ReadSince(7th event's time) = %v, want to start at or before %d and end at %d", got, seqs[6], seqs[9])
	}
	got = collect(func(fn func(eventlog.Event, error) error) error {
		return l.ReadSince(ctx, "r", all[9].Stored.Add(time.Second), fn)
	})
	if len(got) != 0 {
		t.Errorf("ReadSince(after the last) = %v", got)
	}
	got = collect(func(fn func(eventlog.Event, error) error) error { return l.ReadSince(ctx, "r", time.Time{}, fn) })
	if fmt.Sprint(got) != fmt.Sprint(seqs) {
		t.Errorf("ReadSince(zero) = %v", got)
	}
	if err := l.Read(ctx, "missing", 0, 0, func(eventlog.Event, error) error { return nil }); !errors.Is(err, eventlog.ErrUnknownDocument) {
		t.Errorf("Read(missing) = %v", err)
	}
}

func testAsync(t *testing.T, b *backend) {
	l := b.open(t, b.config())
	const n = 2000
	futs := make([]*eventlog.Future, n)
	for i := range n {
		futs[i] = l.AppendAsync(fmt.Sprintf("a%d", i%3), op(uint32(i%3), uint32(i)))
	}
	last := map[string]uint64{}
	for i, f := range futs {
		res, err := f.Wait(ctxT(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		doc := fmt.Sprintf("a%d", i%3)
		if res[0].Duplicate || res[0].Seq <= last[doc] {
			t.Fatalf("op %d: %+v after %d: queued order not kept", i, res, last[doc])
		}
		last[doc] = res[0].Seq
	}
	for d := range 3 {
		evs := readAll(t, l, fmt.Sprintf("a%d", d))
		for i, e := range evs {
			if i > 0 && e.PrevSeq != evs[i-1].Seq || i == 0 && e.PrevSeq != 0 {
				t.Fatalf("doc a%d event %d: prev %d", d, i, e.PrevSeq)
			}
		}
		if len(evs) != n/3+map[bool]int{true: 1}[d < n%3] {
			t.Errorf("doc a%d has %d events", d, len(evs))
		}
	}
}

func testErrors(t *testing.T, b *backend) {
	cfg := b.config()
	cfg.MaxEventSize = 4096
	cfg.MaxBatch = 4
	l := b.open(t, cfg)
	ctx := ctxT(t, 30*time.Second)
	for _, id := range []string{"", "a.b", "a*", "a>", "a b", strings.Repeat("x", 129), "ü"} {
		if _, err := l.Append(ctx, id, eventlog.Any, op(1, 1)); !errors.Is(err, eventlog.ErrBadDocumentID) {
			t.Errorf("Append(%q) = %v, want ErrBadDocumentID", id, err)
		}
		if _, err := l.LastSeq(ctx, id); !errors.Is(err, eventlog.ErrBadDocumentID) {
			t.Errorf("LastSeq(%q) = %v", id, err)
		}
	}
	big := op(1, 1)
	big.Payload = make([]byte, 5000)
	if _, err := l.Append(ctx, "d", eventlog.Any, op(1, 1), big); !errors.Is(err, eventlog.ErrTooLarge) {
		t.Errorf("oversized op: %v", err)
	}
	if _, err := l.Append(ctx, "d", eventlog.Any, op(1, 1), op(1, 2), op(1, 3), op(1, 4), op(1, 5)); !errors.Is(err, eventlog.ErrTooLarge) {
		t.Errorf("oversized batch: %v", err)
	}
	if _, err := l.Append(ctx, "d", eventlog.Any, eventlog.Op{Site: 1, Counter: 1, Author: "\xff"}); !errors.Is(err, eventlog.ErrBadEvent) {
		t.Errorf("invalid author: %v", err)
	}
	// Nothing was written by the failed appends.
	if _, err := l.LastSeq(ctx, "d"); !errors.Is(err, eventlog.ErrUnknownDocument) {
		t.Errorf("failed appends wrote something: %v", err)
	}
	if _, err := l.Append(ctx, "d", 7, op(1, 1)); !errors.Is(err, eventlog.ErrWrongSequence) {
		t.Errorf("expecting 7 on an empty document: %v", err)
	}
	var code schemas.Code
	_, err := l.Append(ctx, "d", 7, op(1, 1))
	if code = schemas.CodeOf(err); code != 0 && code != schemas.CodeWrongSequence {
		t.Errorf("code %v", code)
	}
	l.Close()
	if _, err := l.Append(ctx, "d", eventlog.Any, op(1, 2)); err == nil {
		t.Errorf("append after Close succeeded")
	}
}

func testOpenIdempotent(t *testing.T, b *backend) {
	cfg := b.config()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { b.open(t, cfg) })
	}
	wg.Wait()
	// Migration: a new duplicate window is applied in place...
	cfg.DuplicateWindow = 5 * time.Minute
	b.open(t, cfg)
	// ...a different partition count is refused.
	cfg.Partitions = 4
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if l, err := eventlog.Connect(ctx, b.url, cfg); err == nil {
		l.Close()
		t.Fatal("Open changed the partition count of an existing stream")
	}
}

func testSubscribeRestart(t *testing.T, b *backend) {
	l := b.open(t, b.config())
	ctx := ctxT(t, 120*time.Second)
	var want []uint64
	appendOne := func(i int) {
		// Retried until the servers are back: the same op each time.
		eventually(t, 60*time.Second, func() error {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			res, err := l.Append(actx, "live", eventlog.Any, op(1, uint32(i)))
			if err != nil {
				return err
			}
			if !res[0].Duplicate {
				want = append(want, res[0].Seq)
			} else if res[0].Seq != 0 && (len(want) == 0 || want[len(want)-1] != res[0].Seq) {
				want = append(want, res[0].Seq)
			}
			return nil
		})
	}
	for i := 1; i <= 5; i++ {
		appendOne(i)
	}
	sub, err := l.Subscribe(ctx, "live", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	var got []eventlog.Event
	next := func() {
		e, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		got = append(got, e)
	}
	for range 5 {
		next()
	}
	b.restart(t)
	for i := 6; i <= 10; i++ {
		appendOne(i)
	}
	for range 5 {
		next()
	}
	if len(want) != 10 {
		t.Fatalf("appended %d events, want 10", len(want))
	}
	for i, e := range got {
		var prev uint64
		if i > 0 {
			prev = got[i-1].Seq
		}
		if e.Seq != want[i] || e.PrevSeq != prev || e.Counter != uint32(i+1) {
			t.Errorf("event %d: seq %d prev %d counter %d; want seq %d prev %d", i, e.Seq, e.PrevSeq, e.Counter, want[i], prev)
		}
	}
}
