package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/services/auth"
)

// readFixture is an embedded NATS server with the default layout and one
// document, "notes", typed by two authors.
type readFixture struct {
	url   string
	log   *eventlog.Log
	seqs  []uint64 // every version of notes
	texts []string // the text at each
}

func newReadFixture(t *testing.T) *readFixture {
	t.Helper()
	srv, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := eventlog.Connect(ctx, srv.ClientURL(), eventlog.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &readFixture{url: srv.ClientURL(), log: l}
	a, b := crdt.New(1, rand.NewPCG(1, 1)), crdt.New(2, rand.NewPCG(2, 2))
	for i, w := range []string{"Palimpsest", ": ", "written over", " many times"} {
		ed, other, author := a, b, "ada"
		if i%2 == 1 {
			ed, other, author = b, a, "bob"
		}
		op, err := ed.Insert(ed.Len(), w)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Apply(op); err != nil {
			t.Fatal(err)
		}
		res, err := l.Append(ctx, "notes", eventlog.Any, eventlog.Op{Site: uint32(op.Site), Counter: op.Counter, Author: author, Payload: crdt.AppendOp(nil, &op)})
		if err != nil {
			t.Fatal(err)
		}
		f.seqs, f.texts = append(f.seqs, res[0].Seq), append(f.texts, ed.Text())
	}
	return f
}

func readGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadCommand: `read` on an external NATS with no identity provider
// trusts the development key published there; it serves documents, time
// travel, health, readiness, metrics and the OpenAPI document, and stops
// cleanly.
func TestReadCommand(t *testing.T) {
	f := newReadFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key, err := auth.GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // A restarted serve publishes its key again.
		if err := publishDevKey(ctx, f.log, key); err != nil {
			t.Fatal(err)
		}
	}
	token, err := auth.IssueDevToken(key, "ada", "", auth.Docs{Read: []string{"*"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	cfg := readConfig{projectionFlags: projectionFlags{natsURL: f.url, data: t.TempDir(), logFormat: "text", logLevel: "warn"},
		addr: "127.0.0.1:0", drainTimeout: 5 * time.Second, ready: func(a string) { ready <- a }}
	go func() { done <- runRead(rctx, cfg, slog.New(slog.DiscardHandler)) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("read: %v", err)
	}
	base := "http://" + addr
	for _, p := range []string{"/healthz", "/readyz", "/openapi.json"} {
		if code, body := readGet(t, base+p, ""); code != 200 {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
	}
	if code, body := readGet(t, base+"/v1/documents/notes", ""); code != 401 || !strings.Contains(body, "unauthenticated") {
		t.Fatalf("no token: %d %s", code, body)
	}
	var d struct {
		Text    string `json:"text"`
		Version uint64 `json:"version"`
		Author  string `json:"author"`
	}
	code, body := readGet(t, base+"/v1/documents/notes", token)
	if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || d.Text != f.texts[3] || d.Version != f.seqs[3] {
		t.Fatalf("GET current: %d %s", code, body)
	}
	code, body = readGet(t, base+"/v1/documents/notes?at="+strconv.FormatUint(f.seqs[1], 10), token)
	if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || d.Text != f.texts[1] || d.Author != "bob" {
		t.Fatalf("GET at=%d: %d %s", f.seqs[1], code, body)
	}
	if code, body := readGet(t, base+"/metrics", ""); code != 200 || !strings.Contains(body, `palimpsest_read_requests_total{code="200",route="document"}`) {
		t.Fatalf("/metrics: %d, no request counter:\n%.2000s", code, body)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("read stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("read did not stop")
	}
}

// TestDocCommands: doc get (now and --at a version and a time) and doc
// history print what the log holds, with no token, through the stores.
func TestDocCommands(t *testing.T) {
	f := newReadFixture(t)
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		root := newRootCmd()
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(append(args, "--nats", f.url, "--data", t.TempDir()))
		if err := root.Execute(); err != nil {
			t.Fatalf("palimpsest %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String()
	}
	if got := run("doc", "get", "notes"); got != f.texts[3]+"\n" {
		t.Fatalf("doc get: %q, want %q", got, f.texts[3])
	}
	if got := run("doc", "get", "notes", "--at", strconv.FormatUint(f.seqs[2], 10)); got != f.texts[2]+"\n" {
		t.Fatalf("doc get --at %d: %q, want %q", f.seqs[2], got, f.texts[2])
	}
	if got := run("doc", "get", "notes", "--at", time.Now().Add(time.Hour).Format(time.RFC3339)); got != f.texts[3]+"\n" {
		t.Fatalf("doc get --at <future>: %q", got)
	}
	hist := run("doc", "history", "notes", "--all", "--limit", "1")
	for i, seq := range f.seqs {
		if !strings.Contains(hist, strconv.FormatUint(seq, 10)) {
			t.Fatalf("doc history lacks version %d (#%d):\n%s", seq, i, hist)
		}
	}
	if !strings.Contains(hist, "bob") || !strings.Contains(hist, "+12 chars") {
		t.Fatalf("doc history:\n%s", hist)
	}
	var page struct {
		Versions []struct {
			Author string `json:"author"`
		} `json:"versions"`
	}
	if err := json.Unmarshal([]byte(run("doc", "history", "notes", "--author", "bob", "--json")), &page); err != nil || len(page.Versions) != 2 {
		t.Fatalf("doc history --author bob --json: %+v %v", page, err)
	}
	if got := run("doc", "diff", "notes", "--from", strconv.FormatUint(f.seqs[1], 10)); !strings.Contains(got, `+ @12/12 "written over many times"`) {
		t.Fatalf("doc diff:\n%s", got)
	}
	if got := run("doc", "blame", "notes"); !strings.Contains(got, "ada") || !strings.Contains(got, "bob") {
		t.Fatalf("doc blame:\n%s", got)
	}
}
