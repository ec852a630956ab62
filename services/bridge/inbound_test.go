package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/services/bridge"
)

// TestInboundAppendsAWSRecordsOnceWithoutEchoAndDeadLettersBadOnes runs both
// directions at once, as during a migration: an AWS-side producer writes ops
// to new-event, Palimpsest's own ops are mirrored there too.
func TestInboundAppendsAWSRecordsOnceWithoutEchoAndDeadLettersBadOnes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.options(bridge.SinkKafka, bridge.SinkDynamoDB)
	o.Inbound = true
	e.runBridge(o)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	w := newWriter(e.log, 4)
	nPal := w.write(ctx, t, []string{"pal"}, 30, nil)

	aws, err := kgo.NewClient(kgo.SeedBrokers(e.brokers()...), kgo.DefaultProduceTopic("new-event"))
	if err != nil {
		t.Fatal(err)
	}
	defer aws.Close()
	eventually(t, time.Minute, "the bridge creates the topics", func() error {
		ts, err := kadm.NewClient(aws).ListTopics(ctx, "new-event", "new-event-dlq")
		if err != nil {
			return err
		}
		if len(ts) != 2 || ts.Error() != nil {
			return fmt.Errorf("topics %v", ts.Names())
		}
		return nil
	})

	record := func(key string, v any) *kgo.Record {
		b, ok := v.([]byte)
		if !ok {
			b, _ = json.Marshal(v)
		}
		return &kgo.Record{Key: []byte(key), Value: b}
	}
	awsOps := w.ops("aws", 500, 20)
	good := func(op eventlog.Op) *kgo.Record {
		return record("aws", bridge.Record{DocumentID: "aws", OpID: fmt.Sprintf("aws-op-%d", op.Counter), Site: op.Site, Counter: op.Counter, Author: "bob", Op: op.Payload})
	}
	var recs []*kgo.Record
	for _, op := range awsOps[:10] {
		recs = append(recs, good(op))
	}
	other := awsOps[10]
	recs = append(recs,
		record("aws", []byte(`{"documentId":`)), // bad_event
		record("", bridge.Record{DocumentID: "a.b", OpID: "x", Site: other.Site, Counter: other.Counter, Op: other.Payload}),        // bad_document_id
		record("aws", bridge.Record{DocumentID: "aws", OpID: "x", Site: 500, Counter: 99, Op: []byte{1, 2, 3}}),                     // bad_op
		record("aws", bridge.Record{DocumentID: "aws", OpID: "x", Site: other.Site + 1, Counter: other.Counter, Op: other.Payload}), // bad_op
		record("notaws", bridge.Record{DocumentID: "aws", OpID: "x", Site: other.Site, Counter: other.Counter, Op: other.Payload}),  // bad_event
	)
	for _, op := range awsOps[10:] {
		recs = append(recs, good(op))
	}
	recs = append(recs, good(awsOps[4])) // a producer's retry: the same op again
	if err := aws.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// The AWS ops land in the log once each, in order, marked as from Kafka.
	eventually(t, time.Minute, "the AWS ops in the log", func() error {
		var got []eventlog.Event
		err := e.log.Read(ctx, "aws", 0, 0, func(ev eventlog.Event, err error) error {
			got = append(got, ev)
			return err
		})
		if err != nil {
			return err
		}
		if len(got) > len(awsOps) {
			t.Fatalf("the log has %d AWS ops, %d were sent", len(got), len(awsOps))
		}
		if len(got) < len(awsOps) {
			return fmt.Errorf("%d of %d AWS ops in the log", len(got), len(awsOps))
		}
		for i, ev := range got {
			if ev.Counter != awsOps[i].Counter || ev.Origin != bridge.OriginKafka || ev.Author != "bob" || string(ev.Payload) != string(awsOps[i].Payload) {
				t.Fatalf("AWS op %d in the log: %+v", i, ev)
			}
			if _, err := crdt.DecodeOp(ev.Payload); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})

	// The refused records are in the dead-letter topic with their reasons.
	wantReasons := map[string]int{"bad_event": 2, "bad_document_id": 1, "bad_op": 2}
	eventually(t, time.Minute, "dead letters", func() error {
		dead, err := e.topicRecords("new-event-dlq")
		if err != nil {
			return err
		}
		got := map[string]int{}
		for _, r := range dead {
			got[headerOf(r, bridge.HeaderDLQReason)]++
			if headerOf(r, bridge.HeaderDLQError) == "" || headerOf(r, bridge.HeaderDLQSource) == "" {
				t.Fatalf("dead letter without error or source: %v", r.Headers)
			}
		}
		if !maps.Equal(got, wantReasons) {
			return fmt.Errorf("dead letters by reason %v, want %v", got, wantReasons)
		}
		return nil
	})

	// Outbound: every event in DynamoDB once; on Kafka, the bridge mirrored
	// Palimpsest's ops and not the AWS ones (they are there already).
	seqs := e.logSeqs(t, []string{"pal", "aws"})
	if len(seqs["pal"]) != nPal {
		t.Fatalf("the log has %d Palimpsest ops, want %d", len(seqs["pal"]), nPal)
	}
	eventually(t, time.Minute, "DynamoDB holds both sides' ops", func() error {
		got, err := e.dynamoSeqs(e.table)
		if err != nil {
			return err
		}
		tooMany(t, "dynamodb", seqs, got)
		return sameSeqs("dynamodb", seqs, got)
	})
	eventually(t, time.Minute, "Kafka holds Palimpsest's ops once and no echo", func() error {
		got, err := e.kafkaSeqs("new-event")
		if err != nil {
			return err
		}
		want := map[string][]uint64{"pal": seqs["pal"]}
		tooMany(t, "kafka", want, got)
		return sameSeqs("kafka", want, got)
	})
	eventually(t, 30*time.Second, "inbound counters", func() error {
		echo := gauge(t, o.Registry, "palimpsest_bridge_inbound_records_total", "result", "echo")
		dup := gauge(t, o.Registry, "palimpsest_bridge_inbound_records_total", "result", "duplicate")
		app := gauge(t, o.Registry, "palimpsest_bridge_inbound_records_total", "result", "appended")
		if echo != float64(nPal) || dup != 1 || app != float64(len(awsOps)) {
			return fmt.Errorf("echo %v (want %d), duplicate %v (want 1), appended %v (want %d)", echo, nPal, dup, app, len(awsOps))
		}
		return nil
	})
}
