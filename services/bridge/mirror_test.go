package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
	"github.com/palimpsest-editor/palimpsest/services/bridge"
)

// waitMirrored waits until both sinks hold exactly the log's events of docs
// (each once, in per-document order), then returns the log's sequences.
func (e *env) waitMirrored(t *testing.T, docs []string, want int, within time.Duration) map[string][]uint64 {
	t.Helper()
	seqs := e.logSeqs(t, docs)
	if total(seqs) != want {
		t.Fatalf("the log has %d events of %v, want %d", total(seqs), docs, want)
	}
	eventually(t, within, "Kafka holds every event once, in order", func() error {
		got, err := e.kafkaSeqs("new-event")
		if err != nil {
			return err
		}
		tooMany(t, "kafka", seqs, got)
		return sameSeqs("kafka", seqs, got)
	})
	eventually(t, within, "DynamoDB holds every event once", func() error {
		got, err := e.dynamoSeqs(e.table)
		if err != nil {
			return err
		}
		tooMany(t, "dynamodb", seqs, got)
		return sameSeqs("dynamodb", seqs, got)
	})
	return seqs
}

// tooMany fails the test at once when a sink holds more events of a
// document than the log: a duplicate never goes away.
func tooMany(t *testing.T, sink string, want, got map[string][]uint64) {
	t.Helper()
	for doc, g := range got {
		if len(g) > len(want[doc]) {
			t.Fatalf("%s: document %s has %d events %s, the log %d %s", sink, doc, len(g), short(g), len(want[doc]), short(want[doc]))
		}
	}
}

func TestMirrorsEveryEventOnceInOrderWithHeadersAndLag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.options(bridge.SinkKafka, bridge.SinkDynamoDB)
	e.runBridge(o)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	docs := docNames("doc", 6)
	w := newWriter(e.log, 1)
	n := w.write(ctx, t, docs, 80, nil)
	seqs := e.waitMirrored(t, docs, n, time.Minute)

	// The lag metric comes back to zero for both sinks.
	eventually(t, 30*time.Second, "lag back to 0", func() error {
		for _, s := range []string{"kafka", "dynamodb"} {
			if lag := gauge(t, o.Registry, "palimpsest_bridge_lag_events", "sink", s); lag != 0 {
				return fmt.Errorf("%s lag %v", s, lag)
			}
		}
		return nil
	})
	if got := gauge(t, o.Registry, "palimpsest_bridge_events_total", "sink", "kafka", "result", "mirrored"); got != float64(n) {
		t.Errorf("kafka mirrored %v events, want %d", got, n)
	}

	// Every record and item carries the event: key, headers, fields.
	evs := map[uint64]eventlog.Event{}
	for _, doc := range docs {
		if err := e.log.Read(ctx, doc, 0, 0, func(ev eventlog.Event, err error) error {
			evs[ev.Seq] = ev
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := e.topicRecords("new-event")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		seq, _ := strconv.ParseUint(headerOf(r, bridge.HeaderSeq), 10, 64)
		ev := evs[seq]
		var rec bridge.Record
		if err := json.Unmarshal(r.Value, &rec); err != nil {
			t.Fatal(err)
		}
		switch {
		case string(r.Key) != ev.Doc || rec.DocumentID != ev.Doc:
			t.Fatalf("record of seq %d: key %q, documentId %q; want %q", seq, r.Key, rec.DocumentID, ev.Doc)
		case headerOf(r, bridge.HeaderEventType) != "op" || headerOf(r, bridge.HeaderSchemaVersion) != strconv.Itoa(schemas.EventVersion) ||
			headerOf(r, bridge.HeaderStream) != "PALIMPSEST" || headerOf(r, bridge.HeaderPrevSeq) != strconv.FormatUint(ev.PrevSeq, 10):
			t.Fatalf("record of seq %d: headers %v", seq, r.Headers)
		case !bytes.Equal(rec.Op, ev.Payload) || rec.OpID != ev.OpID || rec.Site != ev.Site || rec.Counter != ev.Counter ||
			rec.Author != ev.Author || rec.Sequence != seq || rec.PrevSequence != ev.PrevSeq:
			t.Fatalf("record of seq %d: %+v, event %+v", seq, rec, ev)
		}
		// What the bridge produces, the inbound direction would accept.
		if _, _, err := bridge.ParseRecord(r.Key, r.Value); err != nil {
			t.Fatalf("record of seq %d does not parse as an inbound record: %v", seq, err)
		}
	}
	items, err := e.dynamoItems(e.table)
	if err != nil {
		t.Fatal(err)
	}
	for doc, its := range items {
		for i, it := range its {
			ev := evs[seqs[doc][i]]
			if want := bridge.Item(ev); !sameItem(want, it) {
				t.Fatalf("item %s/%d: %v, want %v", doc, ev.Seq, it, want)
			}
		}
	}
}

func sameItem(a, b map[string]types.AttributeValue) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			return false
		}
		switch x := va.(type) {
		case *types.AttributeValueMemberS:
			y, ok := vb.(*types.AttributeValueMemberS)
			if !ok || x.Value != y.Value {
				return false
			}
		case *types.AttributeValueMemberN:
			y, ok := vb.(*types.AttributeValueMemberN)
			if !ok || x.Value != y.Value {
				return false
			}
		case *types.AttributeValueMemberB:
			y, ok := vb.(*types.AttributeValueMemberB)
			if !ok || !bytes.Equal(x.Value, y.Value) {
				return false
			}
		default:
			return false
		}
	}
	return true
}
