package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/services/auth"
)

// chromium is Debian's Chromium, which scripts/deps.sh installs.
const chromium = "/usr/bin/chromium"

// TestBrowser runs the Playwright tests (web/e2e/run.mjs) in Chromium against
// a real `palimpsest serve` with a fresh data dir, then checks the server's
// log: both editors' text is the log's, and every keystroke typed offline is
// in the log exactly once.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a minute; not in -short")
	}
	node := needNode(t)
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s not found: run go tool task deps", chromium)
	}
	if _, err := os.Stat("node_modules/playwright-core/package.json"); err != nil {
		t.Fatal("web/node_modules is missing: run go tool task deps")
	}
	srv := startServe(t)

	alice, err := auth.IssueDevToken(srv.key, "alice", "Alice", auth.Docs{Write: []string{"*"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := auth.IssueDevToken(srv.key, "bob", "Bob", auth.Docs{Write: []string{"*"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	artifacts, _ := filepath.Abs("e2e/artifacts")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "e2e/run.mjs")
	cmd.Env = append(os.Environ(), "PALIMPSEST_URL="+srv.url, "PALIMPSEST_TOKEN_A="+alice, "PALIMPSEST_TOKEN_B="+bob,
		"PALIMPSEST_ARTIFACTS="+artifacts, "PALIMPSEST_CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("node e2e/run.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("the browser tests failed: %v", err)
	}
	var res struct {
		Docs map[string]struct {
			Doc        string `json:"doc"`
			Text       string `json:"text"`
			Keystrokes int    `json:"keystrokes"`
		} `json:"docs"`
		Timings map[string]any `json:"timings"`
		NotRun  string         `json:"notRun"`
	}
	m := regexp.MustCompile(`(?m)^RESULT (.*)$`).FindSubmatch(out)
	if m == nil {
		t.Fatal("run.mjs printed no RESULT line")
	}
	if err := json.Unmarshal(m[1], &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("first load: %v", res.Timings)
	for name, d := range res.Docs {
		text, dots := srv.replay(t, d.Doc)
		if text != d.Text {
			t.Errorf("%s: the log's text %q differs from the editors' %q", name, text, d.Text)
		}
		if name == "offline" {
			// One keystroke, one single-code-point insert op; replay checked that no op is there twice.
			if dots != d.Keystrokes {
				t.Errorf("offline: the log has %d ops, %d keystrokes were typed", dots, d.Keystrokes)
			}
		}
	}
	want := []string{"race", "offline", "history"}
	if res.NotRun != "" {
		// Until cmd/palimpsest serve mounts the read API, the history test cannot run.
		t.Logf("NOT RUN: %s", res.NotRun)
		want = want[:2]
	}
	for _, want := range want {
		if _, ok := res.Docs[want]; !ok {
			t.Errorf("run.mjs did not finish the %s test", want)
		}
	}
}

type served struct {
	url string
	key *auth.DevKey
	log *eventlog.Log
}

// startServe builds the binary and runs `palimpsest serve` on loopback with
// a fresh data dir, the embedded NATS also listening on loopback so the test
// reads the log. serve must serve the editor, its login and the read API.
func startServe(t *testing.T) *served {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "palimpsest")
	build := exec.Command("go", "build", "-o", bin, "../cmd/palimpsest")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/palimpsest: %v\n%s", err, out)
	}
	natsAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--nats-listen", natsAddr, "--log-level", "warn")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(testWriter{t, "serve: "}, stderr) }()
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`serving on http://(\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not print its address within 60 s")
	}
	key, _, err := auth.LoadOrCreateDevKey(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer lcancel()
	l, err := eventlog.Connect(lctx, "nats://"+natsAddr, eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	s := &served{url: "http://" + addr, key: key, log: l}
	if !servesEditor(s.url) {
		t.Fatalf("serve at %s does not serve the editor at /", s.url)
	}
	return s
}

// servesEditor reports whether the server's / is the editor.
func servesEditor(base string) bool {
	r, err := http.Get(base + "/")
	if err != nil {
		return false
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode == 200 && strings.Contains(string(b), "<title>Palimpsest</title>")
}

// replay folds doc's log into a fresh replica; it fails on an op that is in
// the log twice and returns the text and the number of ops.
func (s *served) replay(t *testing.T, doc string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := crdt.New(1, rand.NewPCG(1, 2))
	seen := map[crdt.Dot]bool{}
	err := s.log.Read(ctx, doc, 1, 0, func(ev eventlog.Event, err error) error {
		if err != nil {
			return err
		}
		op, err := crdt.DecodeOp(ev.Payload)
		if err != nil {
			return fmt.Errorf("event %d: %w", ev.Seq, err)
		}
		if seen[op.Dot()] {
			t.Errorf("%s: op %v is in the log twice (again at %d)", doc, op.Dot(), ev.Seq)
		}
		seen[op.Dot()] = true
		_, err = d.Apply(op)
		return err
	})
	if err != nil {
		t.Fatalf("%s: read the log: %v", doc, err)
	}
	if h, dels := d.Pending(); h+dels != 0 {
		t.Errorf("%s: the log's replay holds %d ops and %d deletes: an op is missing", doc, h, dels)
	}
	return d.Text(), len(seen)
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type testWriter struct {
	t      *testing.T
	prefix string
}

func (w testWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}
