package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/client"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/auth/authtest"
	"github.com/palimpsest-editor/palimpsest/services/gateway"
)

// secondGateway starts another gateway process's worth of state (its own
// NATS connection, log and site registry) on e's NATS server, as a second
// replica behind a load balancer would be; it returns its WebSocket URL.
func (e *env) secondGateway(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := e.srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l, err := eventlog.Open(ctx, nc, eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	sites, err := l.OpenSites(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(ctx, auth.Config{Keys: []auth.Key{authtest.VerifierKey(t, e.iss)}})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{Log: l, NATS: nc, Sites: sites, Verifier: v, PresenceTTL: e.presenceTTL,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(gw)
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		_ = gw.Drain(dctx)
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// Clients on two gateway replicas edit one document: both replicas send the
// log's order, everyone converges to the log, presence crosses replicas, and
// a site claimed on one replica cannot be taken on the other.
func TestTwoGatewayReplicas(t *testing.T) {
	e := newEnv(t, gateway.Limits{})
	url2 := e.secondGateway(t)
	const doc = "replicas"
	ctx := ctxTimeout(t, 60*time.Second)
	presence := make(chan schemas.PresenceUpdate, 64)
	var clients []*client.Client
	for i, name := range []string{"ada", "bob", "cy", "dee"} {
		cfg := client.Config{}
		if i%2 == 1 {
			cfg.URL = url2
		}
		if name == "dee" {
			cfg.OnPresence = func(p schemas.PresenceUpdate) { presence <- p }
		}
		clients = append(clients, e.client(doc, name, cfg))
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			typeRandomly(t, c, rand.New(rand.NewPCG(uint64(i), 11)), 150)
		}()
	}
	wg.Wait()
	for _, c := range clients {
		if err := c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want, seen, last := e.replay(doc)
	if len(seen) != 600 {
		t.Errorf("the log holds %d ops, want 600", len(seen))
	}
	for i, c := range clients {
		if err := c.WaitSeq(ctx, last); err != nil {
			t.Fatal(err)
		}
		if c.Text() != want {
			t.Errorf("client %d differs from the log", i)
		}
	}

	// Presence from the first replica reaches a client of the second.
	clients[0].SetCursor(0, 2)
	for p := range presence {
		if p.User == "ada" && !p.Gone {
			break
		}
	}

	// Ada's site, claimed through the first replica, is refused to bob on the second.
	r, _ := e.dialRawURL(t, url2)
	r.send(frameOf(t, schemas.FrameHello, &schemas.Hello{Token: e.token("bob", writeAll(), time.Hour), Doc: doc, Site: clients[0].Site()}))
	if got := r.until(false); got != (outcome{close: schemas.CloseForbidden, code: schemas.CodeForbidden}) {
		t.Errorf("another author's site on the second replica: %+v", got)
	}
}

func (e *env) dialRawURL(t *testing.T, url string) (*rawConn, int) {
	t.Helper()
	saved := e.addr
	e.addr = strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/")
	defer func() { e.addr = saved }()
	return e.dialRaw(t, "", []string{schemas.Subprotocol}, http.Header{})
}
