package bridge_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
	"github.com/palimpsest-editor/palimpsest/services/bridge"
)

// TestKafkaSinkRetriesPartialFailuresWithoutLossOrDuplicates makes the
// broker refuse every third produce request, so a Write fails after some of
// its records landed; writing the same events again (as the bridge does)
// must add exactly the missing ones, in order.
func TestKafkaSinkRetriesPartialFailuresWithoutLossOrDuplicates(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "new-event"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var produces, refused atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if produces.Add(1)%3 != 0 {
			return nil, nil, false
		}
		refused.Add(1)
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		resp.Version = pr.Version
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	sink, err := bridge.NewKafkaSink(bridge.KafkaConfig{Brokers: c.ListenAddrs()}, "PALIMPSEST", true, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	want := map[string][]uint64{}
	var seq uint64
	payload := make([]byte, 200<<10) // large records: several produce requests a Write, so failures are partial
	for batch := range 10 {
		var evs []eventlog.Event
		for range 40 {
			seq++
			doc := fmt.Sprintf("doc%d", seq%7)
			want[doc] = append(want[doc], seq)
			evs = append(evs, eventlog.Event{Seq: seq, Event: schemas.Event{Type: schemas.EventOp, Doc: doc, Site: 1, Counter: uint32(seq), OpID: strconv.FormatUint(seq, 10), Payload: payload}})
		}
		failures := 0
		for {
			_, err := sink.Write(ctx, evs)
			if err == nil {
				break
			}
			if failures++; failures > 50 {
				t.Fatalf("batch %d: still failing: %v", batch, err)
			}
		}
		sink.Forget(ctx, seq) // acknowledged
	}
	if refused.Load() == 0 {
		t.Fatal("the broker refused nothing: the test tested nothing")
	}

	// Read the topic back.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("new-event"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string][]uint64{}
	n := 0
	rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
	defer rcancel()
	for n < int(seq) {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			for doc, w := range want {
				if !slices.Equal(got[doc], w) {
					t.Errorf("document %s: %v, want %v", doc, got[doc], w)
				}
			}
			t.Fatalf("read %d records, want %d", n, seq)
		}
		fs.EachRecord(func(r *kgo.Record) {
			s, _ := strconv.ParseUint(headerOf(r, bridge.HeaderSeq), 10, 64)
			got[string(r.Key)] = append(got[string(r.Key)], s)
			n++
		})
	}
	for doc, w := range want {
		if !slices.Equal(got[doc], w) {
			t.Fatalf("document %s: %v, want %v (%d produce requests refused)", doc, got[doc], w, refused.Load())
		}
	}
	t.Logf("%d of %d produce requests refused", refused.Load(), produces.Load())
}
