package eventlog_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/cputime"
)

// The benchmarks run on one embedded server (file store, sync always) over
// loopback TCP and report each operation as a rate and as a ratio to the same
// work done with raw nats.go on the same server in the same run ("x_raw";
// above 1 is faster than raw).

var (
	benchOnce sync.Once
	benchSrv  *eventlog.Server
	benchDir  string
)

func benchServer(b *testing.B) string {
	benchOnce.Do(func() {
		var err error
		benchDir, err = os.MkdirTemp("", "eventlog-bench")
		if err != nil {
			b.Fatal(err)
		}
		benchSrv, err = eventlog.StartServer(eventlog.ServerConfig{DataDir: benchDir, Port: -1})
		if err != nil {
			b.Fatal(err)
		}
	})
	return benchSrv.ClientURL()
}

func benchSetup(b *testing.B) (*eventlog.Log, jetstream.JetStream, string) {
	url := benchServer(b)
	bk := &backend{name: "bench", url: url, replicas: 1}
	cfg := bk.config()
	l := bk.open(b, cfg)
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	raw := "RAW" + cfg.Stream
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: raw, Subjects: []string{"raw." + cfg.Stream + ".>"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute}); err != nil {
		b.Fatal(err)
	}
	return l, js, "raw." + cfg.Stream + ".doc"
}

var payload = []byte("ins 7@42 after 7@41 a") // About 20 bytes, like one LSEQ insert.

func report(b *testing.B, ours, raw time.Duration, n int) {
	b.ReportMetric(float64(n)/ours.Seconds(), "ops/s")
	b.ReportMetric(float64(n)/raw.Seconds(), "raw_ops/s")
	b.ReportMetric(raw.Seconds()/ours.Seconds(), "x_raw")
}

// BenchmarkAppendOne: one op at a time, each waiting for its ack; raw is
// js.Publish with a Nats-Msg-Id.
func BenchmarkAppendOne(b *testing.B) {
	l, js, rawSubj := benchSetup(b)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := js.Publish(ctx, rawSubj, payload, jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
	}
	raw := time.Since(start)
	start = time.Now()
	for i := range b.N {
		if _, err := l.Append(ctx, "bench", eventlog.Any, eventlog.Op{Site: 1, Counter: uint32(i + 1), Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	report(b, time.Since(start), raw, b.N)
}

// BenchmarkAppendPipelined: b.N ops queued at once to one document and
// group-committed; raw is js.PublishAsync of b.N messages, then waiting for
// every ack.
func BenchmarkAppendPipelined(b *testing.B) {
	l, js, rawSubj := benchSetup(b)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := js.PublishAsync(rawSubj, payload, jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	raw := time.Since(start)
	start = time.Now()
	futs := make([]*eventlog.Future, b.N)
	for i := range b.N {
		futs[i] = l.AppendAsync("bench", eventlog.Op{Site: 1, Counter: uint32(i + 1), Payload: payload})
	}
	for _, f := range futs {
		if _, err := f.Result(); err != nil {
			b.Fatal(err)
		}
	}
	report(b, time.Since(start), raw, b.N)
}

// BenchmarkReplay reads one document of 259,778 ops (the length of the
// automerge-paper editing trace) with synthetic 20-byte payloads; raw is an
// ordered consumer fetching the same messages without decoding them.
func BenchmarkReplay(b *testing.B) {
	const n = 259_778
	l, js, _ := benchSetup(b)
	ctx := context.Background()
	const per = 256
	var futs []*eventlog.Future
	for i := 0; i < n; i += per {
		ops := make([]eventlog.Op, 0, per)
		for j := i; j < min(i+per, n); j++ {
			ops = append(ops, eventlog.Op{Site: 1, Counter: uint32(j + 1), Payload: payload})
		}
		futs = append(futs, l.AppendAsync("paper", ops...))
	}
	for _, f := range futs {
		if _, err := f.Result(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var ours, raw time.Duration
	for range b.N {
		start := time.Now()
		cons, err := js.OrderedConsumer(ctx, l.Config().Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{l.Subjects().Stored("paper")}})
		if err != nil {
			b.Fatal(err)
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(1024))
		if err != nil {
			b.Fatal(err)
		}
		for range n {
			if _, err := it.Next(); err != nil {
				b.Fatal(err)
			}
		}
		it.Stop()
		raw += time.Since(start)

		start = time.Now()
		count := 0
		if err := l.Read(ctx, "paper", 0, 0, func(e eventlog.Event, err error) error {
			if err != nil {
				return err
			}
			count++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if count != n {
			b.Fatalf("read %d ops, want %d", count, n)
		}
		ours += time.Since(start)
	}
	report(b, ours, raw, n*b.N)
}

// BenchmarkRawAppendCPU is the floor under the gateway's CPU per op (issue
// 4): the process's CPU time (server and client, both in this process) per
// message for raw js.Publish on the sync-always file store, with nothing of
// Palimpsest in the path. "serial" waits for each ack before the next publish
// (each message its own write and fsync); "20docs" has 20 publishers, one a
// subject, each waiting for its own acks, as 20 documents typing; "batch10"
// is the log's atomic batches of 10 ops.
func BenchmarkRawAppendCPU(b *testing.B) {
	for _, writers := range []int{1, 20} {
		name := "serial"
		if writers > 1 {
			name = fmt.Sprintf("%ddocs", writers)
		}
		b.Run(name, func(b *testing.B) {
			_, js, rawSubj := benchSetup(b)
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			b.ResetTimer()
			cpu := cputime.Now()
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < b.N; i += writers {
						if _, err := js.Publish(ctx, fmt.Sprintf("%s%d", rawSubj, w), payload); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			used := cputime.Since(cpu)
			close(errs)
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
	// The log's own atomic batches of 10 ops, one document: one staging and
	// one fsync per 10 messages, as the gateway's committer does a round.
	b.Run("batch10", func(b *testing.B) {
		l, _, _ := benchSetup(b)
		ctx := context.Background()
		ops := make([]eventlog.Op, 10)
		b.ResetTimer()
		cpu := cputime.Now()
		for i := 0; i < b.N; i += len(ops) {
			for k := range ops {
				ops[k] = eventlog.Op{Site: 1, Counter: uint32(i + k + 1), Payload: payload}
			}
			if _, err := l.Append(ctx, "cpu", eventlog.Any, ops...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cputime.Since(cpu).Microseconds())/float64(b.N), "cpu-µs/op")
	})
}
