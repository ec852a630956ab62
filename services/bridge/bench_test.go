package bridge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/services/bridge"
)

// BenchmarkMirror mirrors b.N events (16 documents) to one sink and reports
// events/s, with the rate at which the same durable-consumer machinery reads
// them from JetStream (fetch + ack, no sink) in the same run, and the ratio
// of the two: x-jetstream-read is the share of the log's read rate the sink
// keeps up with. The servers are an embedded NATS server, kfake (in this
// process) and dynalite (Node.js) on loopback.
//
//	go test ./services/bridge -run '^$' -bench Mirror -benchtime 5000x
func BenchmarkMirror(b *testing.B) {
	for _, sink := range []string{bridge.SinkKafka, bridge.SinkDynamoDB} {
		b.Run(sink, func(b *testing.B) { benchMirror(b, sink) })
	}
}

func benchMirror(b *testing.B, sinkName string) {
	b.StopTimer()
	e := newEnv(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n := max(b.N, 1)
	docs := docNames("bench", 16)
	w := newWriter(e.log, 9)
	var futs []*eventlog.Future
	for i := 0; i < n; { // documents interleaved, 8 ops an append, as editors' traffic is
		d := (i / 8) % len(docs)
		k := min(8, n-i)
		futs = append(futs, e.log.AppendAsync(docs[d], w.ops(docs[d], uint32(1+d), k)...))
		i += k
	}
	for _, f := range futs {
		if _, err := f.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	info, err := e.log.StreamInfo(ctx)
	if err != nil {
		b.Fatal(err)
	}
	head := info.State.LastSeq

	// The log's read rate: the same consumer, fetch and ack, no sink.
	c, err := e.log.OpenStreamConsumer(ctx, "bench-read", eventlog.StreamConsumerConfig{MaxAckPending: 1000})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for read := 0; read < n; {
		ds, err := c.Fetch(ctx, 500, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		read += len(ds)
		if err := c.Ack(ctx); err != nil {
			b.Fatal(err)
		}
	}
	readRate := float64(n) / time.Since(start).Seconds()

	var sink bridge.Sink
	switch sinkName {
	case bridge.SinkKafka:
		kc := bridge.KafkaConfig{Brokers: e.brokers(), Create: true, Partitions: 16}
		if err := bridge.EnsureTopics(ctx, kc, "new-event"); err != nil {
			b.Fatal(err)
		}
		ks, err := bridge.NewKafkaSink(kc, "PALIMPSEST", true, testLogger(b))
		if err != nil {
			b.Fatal(err)
		}
		defer ks.Close()
		sink = ks
	case bridge.SinkDynamoDB:
		ds, err := bridge.NewDynamoSink(ctx, bridge.DynamoConfig{Endpoint: e.dyn.Endpoint(), Table: e.table, Create: true})
		if err != nil {
			b.Fatal(err)
		}
		sink = ds
	}
	br, err := bridge.New(e.log, bridge.Config{Consumer: "bench-mirror", Batch: 500, FetchWait: 10 * time.Millisecond, Logger: testLogger(b)}, sink)
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	b.StartTimer()
	start = time.Now()
	go func() {
		defer close(done)
		_ = br.Run(runCtx)
	}()
	for br.Acked() < head {
		if ctx.Err() != nil {
			b.Fatalf("mirrored %d of %d events before the deadline", br.Acked(), head)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	<-done

	rate := float64(n) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(readRate, "read-events/s")
	b.ReportMetric(rate/readRate, "x-jetstream-read")
	if testing.Verbose() {
		fmt.Printf("%s: %d events mirrored at %.0f/s; JetStream read %.0f/s\n", sinkName, n, rate, readRate)
	}
}
