package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/palimpsest-editor/palimpsest/eventlog"
)

// fetchN fetches until it has n events (or fails at the deadline) without
// acknowledging them.
func fetchN(t *testing.T, c *eventlog.StreamConsumer, n int) []uint64 {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	var seqs []uint64
	for len(seqs) < n {
		ds, err := c.Fetch(ctx, n-len(seqs), 200*time.Millisecond)
		if err != nil {
			t.Logf("fetch: %v (retrying)", err)
			continue
		}
		for _, d := range ds {
			if d.Err != nil {
				t.Fatalf("event %d: %v", d.Seq, d.Err)
			}
			seqs = append(seqs, d.Seq)
		}
	}
	return seqs
}

func wantRun(t *testing.T, got []uint64, from uint64) {
	t.Helper()
	for i, s := range got {
		if s != from+uint64(i) {
			t.Fatalf("deliveries %v: want consecutive sequences from %d", got, from)
		}
	}
}

func TestStreamConsumerOrderAcrossLostDeliveriesAndReopen(t *testing.T) {
	b := embedded(t)
	cfg := b.config()
	l := b.open(t, cfg)
	ctx := ctxT(t, time.Minute)
	for i := range 60 {
		doc := fmt.Sprintf("doc%d", i%5)
		if _, err := l.Append(ctx, doc, eventlog.Any, op(uint32(1+i%5), uint32(1+i/5))); err != nil {
			t.Fatal(err)
		}
	}

	c, err := l.OpenStreamConsumer(ctx, "mirror", eventlog.StreamConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, fetchN(t, c, 10), 1)
	if err := c.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := c.State(ctx); err != nil || st.Acked != 10 || st.Pending != 50 {
		t.Fatalf("state %+v, %v: want acked 10, pending 50", st, err)
	}

	// Fetched and not acknowledged, then the owner "crashes": a new owner
	// starts again at 11, at once, not after AckWait.
	wantRun(t, fetchN(t, c, 5), 11)
	c2, err := l.OpenStreamConsumer(ctx, "mirror", eventlog.StreamConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, fetchN(t, c2, 5), 11)
	if err := c2.Ack(ctx); err != nil {
		t.Fatal(err)
	}

	// Deliveries 16..20 go to a pull nobody reads (a reply lost with its
	// connection): the consumer notices the gap and rewinds instead of
	// skipping ahead to 21.
	nc, err := nats.Connect(b.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	raw, err := js.Consumer(ctx, cfg.Stream, "mirror")
	if err != nil {
		t.Fatal(err)
	}
	lost, err := raw.Fetch(5, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range lost.Messages() {
		n++
	}
	if n != 5 {
		t.Fatalf("stole %d deliveries, want 5", n)
	}
	wantRun(t, fetchN(t, c2, 45), 16)
	if err := c2.Ack(ctx); err != nil {
		t.Fatal(err)
	}

	// Live: a new event arrives while Fetch waits.
	go func() {
		_, _ = l.Append(context.Background(), "late", eventlog.Any, op(9, 1))
	}()
	wantRun(t, fetchN(t, c2, 1), 61)
	if err := c2.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := c2.State(ctx); err != nil || st.Acked != 61 || st.Pending != 0 {
		t.Fatalf("state %+v, %v: want acked 61, pending 0", st, err)
	}
	ds, err := c2.Fetch(ctx, 10, 50*time.Millisecond)
	if err != nil || len(ds) != 0 {
		t.Fatalf("fetch at the end: %d events, %v; want none", len(ds), err)
	}
}

func TestStreamConsumerSurvivesServerRestart(t *testing.T) {
	b := embedded(t)
	l := b.open(t, b.config())
	ctx := ctxT(t, time.Minute)
	for i := range 20 {
		if _, err := l.Append(ctx, "d", eventlog.Any, op(1, uint32(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	c, err := l.OpenStreamConsumer(ctx, "mirror", eventlog.StreamConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, fetchN(t, c, 10), 1)
	if err := c.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	wantRun(t, fetchN(t, c, 5), 11) // not acknowledged when the server goes down
	b.restart(t)
	wantRun(t, fetchN(t, c, 10), 11)
	if err := c.Ack(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSubscribeAllFromSequenceAndTime(t *testing.T) {
	b := embedded(t)
	l := b.open(t, b.config())
	ctx := ctxT(t, time.Minute)
	for i := range 10 {
		if _, err := l.Append(ctx, fmt.Sprintf("d%d", i%3), eventlog.Any, op(uint32(i%3+1), uint32(i/3+1))); err != nil {
			t.Fatal(err)
		}
	}
	evs := readAll(t, l, "d1")
	collect := func(sub *eventlog.Subscription, n int) []uint64 {
		defer sub.Stop()
		var seqs []uint64
		for len(seqs) < n {
			ev, err := sub.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, ev.Seq)
		}
		return seqs
	}
	sub, err := l.SubscribeAll(ctx, 4, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, collect(sub, 7), 4)
	sub, err = l.SubscribeAll(ctx, 0, evs[1].Stored)
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, collect(sub, int(11-evs[1].Seq)), evs[1].Seq)
}

func TestOriginIsStoredAndReadBack(t *testing.T) {
	b := embedded(t)
	l := b.open(t, b.config())
	ctx := ctxT(t, 30*time.Second)
	o := op(3, 1)
	o.Origin = "kafka"
	if _, err := l.Append(ctx, "d", eventlog.Any, o, op(3, 2)); err != nil {
		t.Fatal(err)
	}
	evs := readAll(t, l, "d")
	if len(evs) != 2 || evs[0].Origin != "kafka" || evs[1].Origin != "" {
		t.Fatalf("origins %q, %q: want \"kafka\", \"\"", evs[0].Origin, evs[1].Origin)
	}
	for _, bad := range []string{"a.b", "with space", "x23456789012345678901234567890123"} {
		o := op(4, 1)
		o.Origin = bad
		if _, err := l.Append(ctx, "d", eventlog.Any, o); !errors.Is(err, eventlog.ErrBadEvent) {
			t.Errorf("origin %q: %v, want ErrBadEvent", bad, err)
		}
	}
}
