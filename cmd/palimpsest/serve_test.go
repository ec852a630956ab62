package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/client"
	"github.com/palimpsest-editor/palimpsest/eventlog"
)

// startServe runs serve on a free port and data dir until the returned stop
// is called; it returns the address and the dev token it printed.
func startServe(t *testing.T, data string) (addr, token string, stdout *bytes.Buffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	cfg := serveConfig{addr: "127.0.0.1:0", data: data, logFormat: "json", logLevel: "warn", drainTimeout: 20 * time.Second, devTokenTTL: time.Hour,
		ready: func(a, tok string) { ready <- [2]string{a, tok} }}
	stdout = &bytes.Buffer{}
	errc := make(chan error, 1)
	go func() { errc <- runServe(ctx, cfg, &syncWriter{w: stdout}, io.Discard) }()
	select {
	case r := <-ready:
		addr, token = r[0], r[1]
	case err := <-errc:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("serve did not start")
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-errc
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return addr, token, stdout, stop
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// serve with no configuration: a dev token that works, health, readiness and
// metrics with the process's CPU seconds, a graceful drain that closes the
// client with 1001, and the document still there after a restart.
func TestServeDefaults(t *testing.T) {
	data := t.TempDir()
	addr, token, stdout, stop := startServe(t, data)
	if token == "" || !strings.Contains(stdout.String(), token) || !strings.Contains(stdout.String(), "ws://"+addr+"/v1/ws") {
		t.Fatalf("serve did not print the dev token and URL:\n%s", stdout)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, "http://"+addr+p); code != 200 {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	states := make(chan error, 16)
	c, err := client.Open(client.Config{URL: "ws://" + addr + "/v1/ws", Doc: "hello", Token: client.StaticToken(token),
		MaxBackoff: 100 * time.Millisecond, OnState: func(up bool, err error) {
			if !up {
				states <- err
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Insert(0, "hello, world"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	_, metrics := get(t, "http://"+addr+"/metrics")
	for _, m := range []string{"process_cpu_seconds_total", "palimpsest_gateway_connections 1", "palimpsest_gateway_ops_appended_total 1"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	select {
	case err := <-states:
		if err == nil || !strings.Contains(err.Error(), "1001") {
			t.Errorf("the client was disconnected with %v, want close 1001", err)
		}
	case <-ctx.Done():
		t.Fatal("the client was not disconnected")
	}
	c.Close()

	// Same data: the document and the dev key survive.
	addr2, token2, _, _ := startServe(t, data)
	c2, err := client.Open(client.Config{URL: "ws://" + addr2 + "/v1/ws", Doc: "hello", Token: client.StaticToken(token)})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.WaitSynced(ctx); err != nil {
		t.Fatalf("the old token after a restart: %v", err)
	}
	if got := c2.Text(); got != "hello, world" {
		t.Errorf("after a restart: %q", got)
	}
	if token2 == "" {
		t.Error("no dev token after a restart")
	}
}

func TestFlagsFromEnv(t *testing.T) {
	cmd := newServeCmd()
	t.Setenv("PALIMPSEST_ADDR", "127.0.0.1:9999")
	t.Setenv("PALIMPSEST_MAX_FRAME_BYTES", "4096")
	t.Setenv("PALIMPSEST_LOG_FORMAT", "json")
	if err := cmd.Flags().Parse([]string{"--log-format", "text"}); err != nil {
		t.Fatal(err)
	}
	if err := flagsFromEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"addr": "127.0.0.1:9999", "max-frame-bytes": "4096", "log-format": "text"} {
		if got := cmd.Flags().Lookup(name).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
	t.Setenv("PALIMPSEST_MAX_OP_BYTES", "lots")
	if err := flagsFromEnv(cmd.Flags()); err == nil {
		t.Error("a bad environment value was accepted")
	}
}

// --nats puts the log on an external NATS server instead of an embedded one.
func TestServeExternalNATS(t *testing.T) {
	ns, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ready := make(chan [2]string, 1)
	sctx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		errc <- runServe(sctx, serveConfig{addr: "127.0.0.1:0", data: t.TempDir(), natsURL: ns.ClientURL(), logFormat: "text", logLevel: "warn",
			drainTimeout: 10 * time.Second, devTokenTTL: time.Hour, ready: func(a, tok string) { ready <- [2]string{a, tok} }}, io.Discard, io.Discard)
	}()
	var r [2]string
	select {
	case r = <-ready:
	case err := <-errc:
		t.Fatal(err)
	}
	c, err := client.Open(client.Config{URL: "ws://" + r[0] + "/v1/ws", Doc: "ext", Token: client.StaticToken(r[1])})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Insert(0, "on the external server"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Connect(ctx, ns.ClientURL(), eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if seq, err := l.LastSeq(ctx, "ext"); err != nil || seq == 0 {
		t.Errorf("the external server's log: %d %v", seq, err)
	}
}
