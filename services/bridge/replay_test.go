package bridge_test

import (
	"context"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/services/bridge"
)

func TestReplayRemirrorsARangeFromSequenceOrTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	docs := docNames("r", 3)
	n := newWriter(e.log, 5).write(ctx, t, docs, 40, nil)
	seqs := e.logSeqs(t, docs)
	from := func(first uint64) map[string][]uint64 {
		out := map[string][]uint64{}
		for doc, s := range seqs {
			for _, q := range s {
				if q >= first {
					out[doc] = append(out[doc], q)
				}
			}
		}
		return out
	}

	// From a sequence, to a fresh topic and table.
	o := e.options(bridge.SinkKafka, bridge.SinkDynamoDB)
	o.Kafka.Topic, o.Kafka.DLQTopic, o.DynamoDB.Table = "replayed", "replayed-dlq", "replayed"
	o.Bridge.Batch = 16
	var calls int
	var done, tot int64
	st, err := bridge.RunReplay(ctx, o, bridge.Range{From: 31}, func(d, t int64) { calls, done, tot = calls+1, d, t })
	if err != nil {
		t.Fatal(err)
	}
	if st.First != 31 || st.Last != uint64(n) || st.Events != n-30 || st.Bad != 0 {
		t.Fatalf("replay stats %+v, want 31..%d, %d events", st, n, n-30)
	}
	if done != int64(n-30) || tot != int64(n-30) || calls < (n-30)/16 {
		t.Fatalf("progress ended at %d/%d after %d calls", done, tot, calls)
	}
	want := from(31)
	if got, err := e.kafkaSeqs("replayed"); err != nil || sameSeqs("kafka", want, got) != nil {
		t.Fatalf("replayed topic: %v %v", err, sameSeqs("kafka", want, got))
	}
	if got, err := e.dynamoSeqs("replayed"); err != nil || sameSeqs("dynamodb", want, got) != nil {
		t.Fatalf("replayed table: %v %v", err, sameSeqs("dynamodb", want, got))
	}

	// From a time, DynamoDB only, twice: the second run finds every item there.
	var at time.Time
	for _, doc := range docs {
		if err := e.log.Read(ctx, doc, 61, 61, func(ev eventlog.Event, err error) error {
			at = ev.Stored
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if at.IsZero() {
		t.Fatal("no event at sequence 61")
	}
	o.Sinks = []string{bridge.SinkDynamoDB}
	for range 2 {
		st, err = bridge.RunReplay(ctx, o, bridge.Range{Since: at, To: 100}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.First > 61 || st.Last != 100 {
			t.Fatalf("replay since %v: %+v, want from at most 61 (the events stored at that time) to 100", at, st)
		}
	}
	if already := gauge(t, o.Registry, "palimpsest_bridge_events_total", "sink", "dynamodb", "result", "already_there"); already < float64(100-st.First+1) {
		t.Fatalf("second replay found %v items already there, want %d", already, 100-st.First+1)
	}
	if got, err := e.dynamoSeqs("replayed"); err != nil || sameSeqs("dynamodb", want, got) != nil {
		t.Fatalf("replayed table after the time replays: %v %v", err, sameSeqs("dynamodb", want, got))
	}

	// Nothing after the end.
	st, err = bridge.RunReplay(ctx, o, bridge.Range{From: uint64(n) + 1}, nil)
	if err != nil || st.Events != 0 {
		t.Fatalf("replay past the end: %+v, %v", st, err)
	}
}
