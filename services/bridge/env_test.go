package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"github.com/palimpsest-editor/palimpsest/services/bridge"
)

// childEnv, when set, makes the test binary run the bridge with the JSON
// options it holds instead of the tests: a bridge process a test can SIGKILL.
const childEnv = "PALIMPSEST_BRIDGE_TEST_CHILD"

func TestMain(m *testing.M) {
	if opts := os.Getenv(childEnv); opts != "" {
		os.Exit(runChild(opts))
	}
	harness.Main(m)
}

// childOptions is what a child bridge is told.
type childOptions struct {
	NATS     string
	Brokers  []string
	Endpoint string
	Table    string
	Sinks    []string
	Batch    int
}

func runChild(js string) int {
	var co childOptions
	if err := json.Unmarshal([]byte(js), &co); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	err := bridge.Run(ctx, bridge.Options{
		NATS:     co.NATS,
		Sinks:    co.Sinks,
		Kafka:    bridge.KafkaConfig{Brokers: co.Brokers, Create: true, Partitions: 4},
		DynamoDB: bridge.DynamoConfig{Endpoint: co.Endpoint, Table: co.Table, Create: true},
		Bridge:   bridge.Config{Batch: co.Batch, FetchWait: 100 * time.Millisecond, Logger: logger},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// env is one test's servers: an embedded NATS server, a kfake cluster and
// dynalite, each restartable on its port with its data.
type env struct {
	t       testing.TB
	natsDir string
	nats    *eventlog.Server
	natsURL string
	log     *eventlog.Log // the test's own connection, to append and read

	kafkaDir  string
	kafkaPort int
	kafka     *kfake.Cluster
	kmu       sync.Mutex

	dyn   *harness.Dynalite
	table string
	db    *dynamodb.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, natsDir: t.TempDir(), kafkaDir: t.TempDir(), table: "palimpsest-events"}
	srv, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: e.natsDir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	e.nats, e.natsURL = srv, srv.ClientURL()
	t.Cleanup(func() { e.nats.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if e.log, err = eventlog.Connect(ctx, e.natsURL, eventlog.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.log.Close() })

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.kafkaPort = l.Addr().(*net.TCPAddr).Port
	l.Close()
	e.startKafka()
	t.Cleanup(e.stopKafka)

	e.dyn = harness.NewDynalite(t)
	e.db = dynamodb.New(dynamodb.Options{BaseEndpoint: aws.String(e.dyn.Endpoint()), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", "")})
	return e
}

// restartNATS shuts the NATS server down and starts it again on the same
// port with the same data; clients reconnect.
func (e *env) restartNATS() {
	e.t.Helper()
	e.nats.Shutdown()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.natsURL, "nats://"))
	p, _ := strconv.Atoi(port)
	srv, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: e.natsDir, Port: p})
	if err != nil {
		e.t.Fatal(err)
	}
	e.nats = srv
}

func (e *env) brokers() []string { return []string{"127.0.0.1:" + strconv.Itoa(e.kafkaPort)} }

// startKafka starts kfake on the env's port, loading what it persisted.
func (e *env) startKafka() {
	e.t.Helper()
	e.kmu.Lock()
	defer e.kmu.Unlock()
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.kafka, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(e.kafkaPort), kfake.DataDir(e.kafkaDir))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("start kfake on port %d: %v", e.kafkaPort, err)
		}
		time.Sleep(50 * time.Millisecond) // the port may linger a moment after Close
	}
}

// stopKafka shuts kfake down; its data stays in kafkaDir.
func (e *env) stopKafka() {
	e.kmu.Lock()
	defer e.kmu.Unlock()
	if e.kafka != nil {
		e.kafka.Close()
		e.kafka = nil
	}
}

// options are the bridge's options against this env.
func (e *env) options(sinks ...string) bridge.Options {
	return bridge.Options{
		NATS:     e.natsURL,
		Sinks:    sinks,
		Kafka:    bridge.KafkaConfig{Brokers: e.brokers(), Create: true, Partitions: 4},
		DynamoDB: bridge.DynamoConfig{Endpoint: e.dyn.Endpoint(), Table: e.table, Create: true},
		Bridge:   bridge.Config{Batch: 100, FetchWait: 100 * time.Millisecond, LagEvery: 50 * time.Millisecond, Logger: testLogger(e.t)},
		Registry: prometheus.NewRegistry(),
	}
}

// runBridge runs the bridge in this process until the test ends (or stop).
func (e *env) runBridge(o bridge.Options) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bridge.Run(ctx, o) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("bridge.Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				e.t.Errorf("bridge.Run did not return 30s after its context ended")
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// child is a bridge process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startChild runs the bridge in a new process (this test binary, re-executed).
func (e *env) startChild(sinks []string, batch int, logPath string) *child {
	e.t.Helper()
	js, _ := json.Marshal(childOptions{NATS: e.natsURL, Brokers: e.brokers(), Endpoint: e.dyn.Endpoint(), Table: e.table, Sinks: sinks, Batch: batch})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Pdeathsig follows the thread that forked; keep it alive.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		e.t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	e.t.Cleanup(func() { c.kill(e.t) })
	return c
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill(t testing.TB) {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Errorf("bridge process %d still there 30s after SIGKILL", c.cmd.Process.Pid)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// eventually polls cond every 20ms until it returns nil, and fails the test
// with cond's last error after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writer appends CRDT ops to documents, each document from its own site,
// in calls of 1 to 4 ops.
type writer struct {
	l    *eventlog.Log
	rng  *rand.Rand
	docs map[string]*crdt.Doc
	mu   sync.Mutex
}

func newWriter(l *eventlog.Log, seed uint64) *writer {
	return &writer{l: l, rng: rand.New(rand.NewPCG(seed, seed)), docs: map[string]*crdt.Doc{}}
}

// ops makes n insert ops on doc.
func (w *writer) ops(doc string, site uint32, n int) []eventlog.Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.docs[doc]
	if d == nil {
		d = crdt.New(crdt.SiteID(site), rand.NewPCG(uint64(site), 7))
		w.docs[doc] = d
	}
	out := make([]eventlog.Op, n)
	for i := range out {
		op, err := d.Insert(w.rng.IntN(d.Len()+1), string(rune('a'+w.rng.IntN(26))))
		if err != nil {
			panic(err)
		}
		out[i] = eventlog.Op{Site: site, Counter: op.Counter, Author: "author-" + doc, Payload: crdt.AppendOp(nil, &op)}
	}
	return out
}

// write appends perDoc ops to each of docs (in parallel across documents)
// and returns the number appended. pause, if set, runs between calls.
func (w *writer) write(ctx context.Context, t *testing.T, docs []string, perDoc int, pause func()) int {
	var wg sync.WaitGroup
	for i, doc := range docs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			site := uint32(1000 + i)
			for left := perDoc; left > 0; {
				n := min(left, 1+int(uint64(left)*7%4))
				ops := w.ops(doc, site, n)
				for {
					_, err := w.l.Append(ctx, doc, eventlog.Any, ops...)
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						t.Errorf("append to %s: %v", doc, err)
						return
					}
				}
				left -= n
				if pause != nil {
					pause()
				}
			}
		}()
	}
	wg.Wait()
	return len(docs) * perDoc
}

func docNames(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// logSeqs returns every document's sequences in the log.
func (e *env) logSeqs(t *testing.T, docs []string) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, doc := range docs {
		err := e.log.Read(ctx, doc, 0, 0, func(ev eventlog.Event, err error) error {
			if err != nil {
				return err
			}
			out[doc] = append(out[doc], ev.Seq)
			return nil
		})
		if err != nil {
			t.Fatalf("read %s: %v", doc, err)
		}
	}
	return out
}

// topicRecords reads every record of topic up to its current end.
func (e *env) topicRecords(topic string) ([]*kgo.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers()...), kgo.RequestRetries(2))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, err
	}
	want := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = kgo.NewOffset().AtStart()
			left[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil, nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(e.brokers()...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: want}))
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var recs []*kgo.Record
	for len(left) > 0 {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %v with %v left", topic, ctx.Err(), left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			recs = append(recs, r)
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	return recs, nil
}

// kafkaSeqs returns, per document, the sequences of the records the bridge
// mirrored to the topic, in offset order (the order a consumer sees).
func (e *env) kafkaSeqs(topic string) (map[string][]uint64, error) {
	recs, err := e.topicRecords(topic)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(recs, func(a, b *kgo.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	out := map[string][]uint64{}
	for _, r := range recs {
		if o := headerOf(r, bridge.HeaderOrigin); o != bridge.OriginPalimpsest {
			continue
		}
		seq, err := strconv.ParseUint(headerOf(r, bridge.HeaderSeq), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("record %d/%d: bad %s header: %v", r.Partition, r.Offset, bridge.HeaderSeq, err)
		}
		out[string(r.Key)] = append(out[string(r.Key)], seq)
	}
	return out, nil
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// dynamoItems returns every item of table, by document, sorted by sequence.
func (e *env) dynamoItems(table string) (map[string][]map[string]types.AttributeValue, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := map[string][]map[string]types.AttributeValue{}
	p := dynamodb.NewScanPaginator(e.db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			doc := it[bridge.AttrDocumentID].(*types.AttributeValueMemberS).Value
			out[doc] = append(out[doc], it)
		}
	}
	for _, items := range out {
		slices.SortFunc(items, func(a, b map[string]types.AttributeValue) int {
			return int(itemSeq(a)) - int(itemSeq(b))
		})
	}
	return out, nil
}

func itemSeq(it map[string]types.AttributeValue) uint64 {
	n, _ := strconv.ParseUint(it[bridge.AttrSequence].(*types.AttributeValueMemberN).Value, 10, 64)
	return n
}

func (e *env) dynamoSeqs(table string) (map[string][]uint64, error) {
	items, err := e.dynamoItems(table)
	if err != nil {
		return nil, err
	}
	out := map[string][]uint64{}
	for doc, its := range items {
		for _, it := range its {
			out[doc] = append(out[doc], itemSeq(it))
		}
	}
	return out, nil
}

// sameSeqs says how got differs from want: a document's sequences missing,
// repeated or out of order.
func sameSeqs(what string, want, got map[string][]uint64) error {
	for doc, w := range want {
		if g := got[doc]; !slices.Equal(w, g) {
			return fmt.Errorf("%s: document %s has %d events %s, want %d %s", what, doc, len(g), short(g), len(w), short(w))
		}
	}
	for doc, g := range got {
		if _, ok := want[doc]; !ok {
			return fmt.Errorf("%s: unexpected document %s with %d events", what, doc, len(g))
		}
	}
	return nil
}

func short(s []uint64) string {
	if len(s) <= 12 {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%v…%v", s[:6], s[len(s)-6:])
}

// total counts the events of m.
func total(m map[string][]uint64) int {
	n := 0
	for _, s := range m {
		n += len(s)
	}
	return n
}

func gauge(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
	}
	return 0
}
