package gateway_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/palimpsest-editor/palimpsest/client"
	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/auth/authtest"
	"github.com/palimpsest-editor/palimpsest/services/gateway"
)

// env is a gateway on a real embedded JetStream server (file store in a
// temporary directory) behind a real HTTP server on loopback. restart stops
// everything and starts it again on the same ports and data.
type env struct {
	t       *testing.T
	dir     string
	limits  gateway.Limits
	iss     *auth.Issuer
	snaps   gateway.SnapshotSource
	sndbuf  int // when set, the socket send buffer of every accepted connection
	origins []string
	// presenceTTL, when set, is the gateway's Config.PresenceTTL.
	presenceTTL time.Duration

	natsPort int
	addr     string

	mu     sync.Mutex
	srv    *eventlog.Server
	nc     *nats.Conn
	log    *eventlog.Log
	gw     *gateway.Gateway
	hs     *http.Server
	served chan struct{}
}

func newEnv(t *testing.T, limits gateway.Limits) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), limits: limits, iss: authtest.EdDSAIssuer(t, "k1"), natsPort: -1, addr: "127.0.0.1:0"}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *env) start() {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: e.dir, Port: e.natsPort})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.ClientURL())
	e.natsPort, _ = strconv.Atoi(u.Port())
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Open(ctx, nc, eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sites, err := l.OpenSites(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(ctx, auth.Config{Keys: []auth.Key{authtest.VerifierKey(t, e.iss)}, Leeway: -1})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{Log: l, NATS: nc, Sites: sites, Verifier: v, Limits: e.limits, Snapshots: e.snaps, Origins: e.origins, PresenceTTL: e.presenceTTL,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ { // The port of a restarted server may linger a moment.
		ln, err = net.Listen("tcp", e.addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	if e.sndbuf > 0 {
		ln = smallBufListener{ln.(*net.TCPListener), e.sndbuf}
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/ws", gw)
	hs := &http.Server{Handler: mux}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	e.mu.Lock()
	e.srv, e.nc, e.log, e.gw, e.hs, e.served = srv, nc, l, gw, hs, served
	e.mu.Unlock()
}

// stop drains the gateway and stops everything; the data stays.
func (e *env) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = e.hs.Shutdown(ctx)
	if err := e.gw.Drain(ctx); err != nil {
		e.t.Errorf("drain: %v", err)
	}
	<-e.served
	_ = e.log.Close()
	e.nc.Close()
	e.srv.Shutdown()
	e.srv = nil
}

func (e *env) url() string { return "ws://" + e.addr + "/v1/ws" }

func (e *env) token(sub string, docs auth.Docs, ttl time.Duration) string {
	e.t.Helper()
	tok, err := e.iss.Issue(sub, "", docs, ttl)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func writeAll() auth.Docs { return auth.Docs{Write: []string{"*"}} }

func (e *env) client(doc, sub string, cfg client.Config) *client.Client {
	e.t.Helper()
	cfg.Doc = doc
	if cfg.URL == "" {
		cfg.URL = e.url()
	}
	if cfg.Token == nil {
		cfg.Token = client.StaticToken(e.token(sub, writeAll(), time.Hour))
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 200 * time.Millisecond
	}
	c, err := client.Open(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// logEvents reads document doc's whole history.
func (e *env) logEvents(doc string) []eventlog.Event {
	e.t.Helper()
	e.mu.Lock()
	l := e.log
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var evs []eventlog.Event
	err := l.Read(ctx, doc, 1, 0, func(ev eventlog.Event, err error) error {
		if err != nil {
			return err
		}
		evs = append(evs, ev)
		return nil
	})
	if err != nil && !errors.Is(err, eventlog.ErrUnknownDocument) {
		e.t.Fatal(err)
	}
	return evs
}

// replay folds the log into a fresh replica and checks that every op is in
// it exactly once.
func (e *env) replay(doc string) (string, map[crdt.Dot]int, uint64) {
	e.t.Helper()
	d := crdt.New(1, crdtRand())
	seen := map[crdt.Dot]int{}
	var last uint64
	for _, ev := range e.logEvents(doc) {
		op, err := crdt.DecodeOp(ev.Payload)
		if err != nil {
			e.t.Fatalf("event %d: %v", ev.Seq, err)
		}
		seen[op.Dot()]++
		if seen[op.Dot()] > 1 {
			e.t.Errorf("op %v is in the log twice (second at sequence %d)", op.Dot(), ev.Seq)
		}
		if _, err := d.Apply(op); err != nil {
			e.t.Fatalf("event %d: %v", ev.Seq, err)
		}
		last = ev.Seq
	}
	if h, dels := d.Pending(); h != 0 || dels != 0 {
		e.t.Errorf("the log's replay holds %d ops and %d deletes: some op is missing", h, dels)
	}
	return d.Text(), seen, last
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// smallBufListener shrinks the send buffer of accepted connections, so a
// client that stops reading fills it after a few frames.
type smallBufListener struct {
	*net.TCPListener
	size int
}

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.TCPListener.AcceptTCP()
	if err != nil {
		return nil, err
	}
	_ = c.SetWriteBuffer(l.size)
	return c, nil
}
