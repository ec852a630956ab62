package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"github.com/palimpsest-editor/palimpsest/projections/kvstate"
	"github.com/palimpsest-editor/palimpsest/projections/pgstate"
)

// TestProjectorAndRebuildCommands runs `projector` against a NATS server and
// PostgreSQL, reads its Prometheus metrics, runs `rebuild state` beside it,
// and checks that the running projector carries on in the new generation.
func TestProjectorAndRebuildCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	pgSrv := harness.NewPostgres(t)
	dsn, err := pgSrv.CreateDatabase(ctx, "projector")
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Connect(ctx, srv.ClientURL(), eventlog.Config{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	doc := crdt.New(5, rand.NewPCG(5, 5))
	write := func(n int) uint64 {
		var last uint64
		for i := range n {
			op, err := doc.Insert(doc.Len()-min(i%3, doc.Len()), "ab")
			if err != nil {
				t.Fatal(err)
			}
			res, err := l.Append(ctx, "cmd-doc", eventlog.Any, eventlog.Op{Site: uint32(op.Site), Counter: op.Counter, Payload: crdt.AppendOp(nil, &op)})
			if err != nil {
				t.Fatal(err)
			}
			last = res[0].Seq
		}
		return last
	}
	last := write(300)

	flags := projectionFlags{natsURL: srv.ClientURL(), postgres: dsn, partitions: 4, logFormat: "text", logLevel: "warn"}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	metricsAddr := make(chan string, 1)
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- runProjector(pctx, projectorConfig{projectionFlags: flags, metricsAddr: "127.0.0.1:0", leaseTTL: 2 * time.Second,
			ready: func(a string) { metricsAddr <- a }}, logger)
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("projector: %v", err)
		}
	}()
	addr := <-metricsAddr

	pg, err := pgstate.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	waitVersion := func(want uint64) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			s, err := pg.Live(ctx)
			if err == nil {
				got, err := s.Load(ctx, []string{"cmd-doc"})
				if err == nil && got["cmd-doc"].Version == want && got["cmd-doc"].Text == doc.Text() {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("cmd-doc not at version %d within a minute", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitVersion(last)

	// The counters move when the batch is acknowledged, just after the commit.
	var body []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`(?m)^palimpsest_projector_ops_total (\d+)`).FindSubmatch(body)
		if m != nil {
			if n, _ := strconv.Atoi(string(m[1])); n == 300 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ops_total not 300 in /metrics:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, name := range []string{"palimpsest_projector_lag_events", "palimpsest_projector_batch_duration_seconds", "palimpsest_projector_dead_letters_total", "palimpsest_projector_partitions_owned 4"} {
		if !bytes.Contains(body, []byte(name)) {
			t.Fatalf("%s missing from /metrics", name)
		}
	}

	before, _ := pg.Live(ctx)
	var out, errOut bytes.Buffer
	st, err := runRebuild(ctx, rebuildConfig{projectionFlags: flags, progress: true}, logger, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 300 || !strings.Contains(out.String(), "promoted") {
		t.Fatalf("rebuild: %+v, %q", st, out.String())
	}
	if !strings.Contains(errOut.String(), "rebuild state") {
		t.Fatalf("no progress bar on stderr: %q", errOut.String())
	}
	after, _ := pg.Live(ctx)
	if after.(*pgstate.Store).Generation() != before.(*pgstate.Store).Generation()+1 {
		t.Fatal("rebuild did not promote a new generation")
	}
	// The running projector moves on to the new generation.
	waitVersion(write(50))
}

// With no --postgres the state projection is a JetStream KV bucket; rebuild
// builds a new bucket and moves the pointer.
func TestRebuildEmbeddedKV(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	l, err := eventlog.Connect(ctx, srv.ClientURL(), eventlog.Config{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	doc := crdt.New(9, rand.NewPCG(9, 9))
	var last uint64
	for range 40 {
		op, err := doc.Insert(doc.Len(), "kv")
		if err != nil {
			t.Fatal(err)
		}
		res, err := l.Append(ctx, "kv-doc", eventlog.Any, eventlog.Op{Site: uint32(op.Site), Counter: op.Counter, Payload: crdt.AppendOp(nil, &op)})
		if err != nil {
			t.Fatal(err)
		}
		last = res[0].Seq
	}
	flags := projectionFlags{natsURL: srv.ClientURL(), partitions: 2, logFormat: "text", logLevel: "warn"}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for gen := uint64(1); gen <= 2; gen++ {
		var out bytes.Buffer
		if _, err := runRebuild(ctx, rebuildConfig{projectionFlags: flags}, logger, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		kv, err := kvstate.Open(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		s, err := kv.Live(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Nothing made a generation live before the first rebuild.
		if g := s.(*kvstate.Store).Generation(); g != gen {
			t.Fatalf("live generation %d after rebuild %d", g, gen)
		}
		got, err := s.Load(ctx, []string{"kv-doc"})
		if err != nil || got["kv-doc"].Version != last || got["kv-doc"].Text != doc.Text() {
			t.Fatalf("after rebuild %d: %+v %v", gen, got["kv-doc"].Version, err)
		}
	}
}
