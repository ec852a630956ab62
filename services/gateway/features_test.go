package gateway_test

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/palimpsest-editor/palimpsest/client"
	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/schemas"
	"github.com/palimpsest-editor/palimpsest/services/auth/authtest"
	"github.com/palimpsest-editor/palimpsest/services/gateway"
)

// Cursors travel between users, stamped with the user, and vanish when the
// user leaves; nothing of it reaches the log.
func TestPresence(t *testing.T) {
	e := newEnv(t, gateway.Limits{})
	const doc = "presence"
	got := make(chan schemas.PresenceUpdate, 16)
	a := e.client(doc, "ada", client.Config{})
	b := e.client(doc, "bob", client.Config{OnPresence: func(p schemas.PresenceUpdate) { got <- p }})
	ctx := ctxTimeout(t, 30*time.Second)
	helloThenSelect(ctx, t, e, doc, a, b)
	select {
	case p := <-got:
		if p.User != "ada" || p.Site != a.Site() || p.Gone {
			t.Fatalf("presence %+v", p)
		}
		if h, an := b.PositionAfter(p.Head), b.PositionAfter(p.Anchor); h != 3 || an != 1 {
			t.Errorf("bob sees ada's selection at %d..%d, want 1..3", an, h)
		}
	case <-ctx.Done():
		t.Fatal("no presence update")
	}
	a.Close()
	select {
	case p := <-got:
		if !p.Gone || p.Site != a.Site() {
			t.Errorf("after ada left: %+v", p)
		}
	case <-ctx.Done():
		t.Fatal("no gone update")
	}
	if n := len(e.logEvents(doc)); n != 1 {
		t.Errorf("the log has %d events, want 1: presence must not be logged", n)
	}
}

// A user whose gateway died without saying "gone" vanishes from the others'
// view after the presence TTL, while a user of a live gateway stays: her
// gateway (here another replica) repeats her presence, and a newcomer long
// after still gets it.
func TestPresenceExpiresWithItsGateway(t *testing.T) {
	e := &env{t: t, dir: t.TempDir(), iss: authtest.EdDSAIssuer(t, "k1"), natsPort: -1, addr: "127.0.0.1:0",
		presenceTTL: time.Second}
	e.start()
	t.Cleanup(e.stop)
	url2 := e.secondGateway(t)
	const doc = "presence-ttl"
	ctx := ctxTimeout(t, 30*time.Second)
	got := make(chan schemas.PresenceUpdate, 64)
	a := e.client(doc, "ada", client.Config{URL: url2})
	b := e.client(doc, "bob", client.Config{OnPresence: func(p schemas.PresenceUpdate) { got <- p }})
	helloThenSelect(ctx, t, e, doc, a, b)

	// Another gateway's user, published once as that gateway would, then
	// never again: the gateway is gone.
	const ghost = 0xdead
	frame, err := schemas.AppendFrame(nil, schemas.FramePresenceUpdate, &schemas.PresenceUpdate{Site: ghost, User: "ghost"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Publish("palimpsest.presence."+doc, frame); err != nil {
		t.Fatal(err)
	}
	var sawGhost, sawAda bool
	for expired := false; !expired; {
		var p schemas.PresenceUpdate
		select {
		case p = <-got:
		case <-ctx.Done():
			t.Fatalf("no gone update for the ghost (seen: ghost %v, ada %v)", sawGhost, sawAda)
		}
		switch {
		case p.Site == a.Site() && p.Gone:
			t.Fatal("ada's presence expired though her gateway is alive")
		case p.Site == a.Site():
			sawAda = true
		case p.Site == ghost && !p.Gone:
			sawGhost = true
		case p.Site == ghost && p.Gone:
			expired = sawGhost
		}
	}
	// Past the TTL, a newcomer still learns of ada, and not of the ghost.
	late := make(chan schemas.PresenceUpdate, 16)
	e.client(doc, "cyd", client.Config{OnPresence: func(p schemas.PresenceUpdate) { late <- p }})
	select {
	case p := <-late:
		if p.Site != a.Site() || p.Gone {
			t.Fatalf("the newcomer's first presence is %+v, want ada's", p)
		}
	case <-ctx.Done():
		t.Fatal("the newcomer never learnt of ada")
	}
}

// helloThenSelect has a type "hello" into doc, waits until b has it, then
// has a select "el" (positions 1 to 3).
func helloThenSelect(ctx context.Context, t *testing.T, e *env, doc string, a, b *client.Client) {
	t.Helper()
	if _, err := a.Insert(0, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, last := e.replay(doc)
	if err := b.WaitSeq(ctx, last); err != nil {
		t.Fatal(err)
	}
	a.SetCursor(1, 3)
}

type fakeSnapshots struct {
	seq   uint64
	data  []byte
	calls atomic.Int32
}

func (f *fakeSnapshots) Snapshot(context.Context, string) (uint64, []byte, bool, error) {
	f.calls.Add(1)
	return f.seq, f.data, f.data != nil, nil
}

// A client far behind gets the snapshot and only the tail of the log.
func TestSnapshotPlusTail(t *testing.T) {
	e := newEnv(t, gateway.Limits{})
	const doc = "snap"
	ctx := ctxTimeout(t, 60*time.Second)
	a := e.client(doc, "ada", client.Config{})
	for i := range 50 {
		if _, err := a.Insert(i, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	a.Close()
	evs := e.logEvents(doc)
	d := crdt.New(1, crdtRand())
	for _, ev := range evs[:30] {
		op, _ := crdt.DecodeOp(ev.Payload)
		if _, err := d.Apply(op); err != nil {
			t.Fatal(err)
		}
	}
	snaps := &fakeSnapshots{seq: evs[29].Seq, data: d.AppendSnapshot(nil)}
	e.stop() // A fresh gateway: no recent events in memory.
	e.snaps = snaps
	e.start()

	var events atomic.Int32
	b := e.client(doc, "bob", client.Config{OnEvent: func(client.Event) { events.Add(1) }})
	want, _, last := e.replay(doc)
	if err := b.WaitSeq(ctx, last); err != nil {
		t.Fatal(err)
	}
	if got := b.Text(); got != want {
		t.Errorf("text %q, want %q", got, want)
	}
	if n := events.Load(); n != 20 {
		t.Errorf("bob received %d events, want the 20 after the snapshot", n)
	}
	if snaps.calls.Load() == 0 {
		t.Error("the snapshot source was not asked")
	}
}

// A client that stops reading is dropped when its queue overflows, without
// disturbing anyone else; it reconnects and catches up from the log.
func TestSlowClientDroppedAndCatchesUp(t *testing.T) {
	e := &env{t: t, dir: t.TempDir(), limits: gateway.Limits{SendQueue: 512}, natsPort: -1, addr: "127.0.0.1:0", sndbuf: 4096}
	e.iss = newEnv(t, gateway.Limits{}).iss // any issuer; only its key matters
	e.start()
	t.Cleanup(e.stop)
	const doc = "slow"
	ctx := ctxTimeout(t, 60*time.Second)
	release := make(chan struct{})
	var sDrops, wDrops atomic.Int32
	smallRead := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	s := e.client(doc, "sam", client.Config{Dialer: smallRead,
		OnEvent: func(client.Event) { <-release },
		OnState: func(up bool, _ error) {
			if !up {
				sDrops.Add(1)
			}
		}})
	// The writer keeps one batch in flight, so its own echoes fit its queue.
	w := e.client(doc, "wes", client.Config{MaxInflight: 1, OnState: func(up bool, err error) {
		if !up {
			t.Logf("writer disconnected: %v", err)
			wDrops.Add(1)
		}
	}})
	if err := s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 1500 {
		if _, err := w.Insert(w.Len(), "abcdefghijklmnopqrstuvwxyz"[i%26:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the slow client to be dropped", func() bool { return e.gw.Connections() == 1 })
	close(release)
	want, _, last := e.replay(doc)
	if err := s.WaitSeq(ctx, last); err != nil {
		t.Fatal(err)
	}
	if got := s.Text(); got != want {
		t.Errorf("slow client: %d code points, the log %d", len([]rune(got)), len([]rune(want)))
	}
	if sDrops.Load() == 0 {
		t.Error("the slow client was never disconnected")
	}
	if n := wDrops.Load(); n != 0 {
		t.Errorf("the writer was disconnected %d times", n)
	}
}

// A client whose tokens live two seconds keeps its connection by sending
// fresh ones before they expire.
func TestClientRefreshesToken(t *testing.T) {
	e := newEnv(t, gateway.Limits{})
	var drops, mints atomic.Int32
	c := e.client("refresh", "ada", client.Config{
		Token: func(context.Context) (string, error) {
			mints.Add(1)
			return e.token("ada", writeAll(), 2*time.Second), nil
		},
		OnState: func(up bool, _ error) {
			if !up {
				drops.Add(1)
			}
		}})
	ctx := ctxTimeout(t, 30*time.Second)
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	<-time.After(5 * time.Second) // Outlive two tokens.
	if _, err := c.Insert(0, "still connected"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if n := drops.Load(); n != 0 {
		t.Errorf("disconnected %d times", n)
	}
	if n := mints.Load(); n < 3 {
		t.Errorf("%d tokens fetched, want at least 3", n)
	}
}

// The token may come from the HttpOnly cookie instead of the Hello; an
// Origin on the allow-list is let in.
func TestCookieTokenAndAllowedOrigin(t *testing.T) {
	e := newEnv(t, gateway.Limits{})
	e.stop()
	e.origins = []string{"https://editor.example"}
	e.start()
	hdr := http.Header{
		"Cookie": {"palimpsest_token=" + e.token("ada", writeAll(), time.Hour)},
		"Origin": {"https://editor.example"},
	}
	r, status := e.dialRaw(t, "", []string{schemas.Subprotocol}, hdr)
	if r == nil {
		t.Fatalf("upgrade refused: %d", status)
	}
	r.send(frameOf(t, schemas.FrameHello, &schemas.Hello{Doc: "cookie", Site: 5}))
	if o := r.until(true); o != (outcome{}) {
		t.Fatalf("hello with the cookie's token: %+v", o)
	}
	r.send(frameOf(t, schemas.FrameSubmit, &schemas.Submit{Batch: 1, Ops: opsOf(5, 1, "hi")}))
	_ = r.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, data, err := r.ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if ft, body, _ := schemas.SplitFrame(data); ft == schemas.FrameEvent {
			var ev schemas.WireEvent
			if err := ev.UnmarshalBinary(body); err != nil || ev.Author != "ada" {
				t.Fatalf("event %+v %v: the author must be the cookie token's subject", ev, err)
			}
			break
		}
	}
	if _, status := e.dialRaw(t, "", []string{schemas.Subprotocol}, http.Header{"Origin": {"https://editor.example.evil"}}); status != http.StatusForbidden {
		t.Errorf("an origin off the list: %d, want 403", status)
	}
}
