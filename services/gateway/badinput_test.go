package gateway_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/palimpsest-editor/palimpsest/client"
	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/schemas"
	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/auth/authtest"
	"github.com/palimpsest-editor/palimpsest/services/gateway"
)

// tableLimits are small enough that the table can exceed each one cheaply.
var tableLimits = gateway.Limits{
	MaxFrameBytes:    16 << 10,
	MaxOpsPerBatch:   8,
	MaxOpBytes:       2048,
	MaxDocumentChars: 200,
	FramesPerSecond:  20,
	FramesBurst:      40,
	HelloTimeout:     time.Second,
}

func frameOf(t *testing.T, ft schemas.FrameType, m schemas.Message) []byte {
	t.Helper()
	b, err := schemas.AppendFrame(nil, ft, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opsOf returns n ops of a fresh replica with the given site, each inserting text.
func opsOf(site uint32, n int, text string) [][]byte {
	d := crdt.New(crdt.SiteID(site), rand.NewPCG(uint64(site), 1))
	var out [][]byte
	for range n {
		op, _ := d.Insert(0, text)
		out = append(out, crdt.AppendOp(nil, &op))
	}
	return out
}

// outcome is what a client got: an HTTP status refusing the upgrade, or a
// close code with the ErrorFrame before it, or a Nack.
type outcome struct {
	http  int
	close int
	code  schemas.Code
	nack  schemas.Code
}

type rawConn struct {
	t  *testing.T
	ws *websocket.Conn
}

func (e *env) dialRaw(t *testing.T, query string, protocols []string, hdr http.Header) (*rawConn, int) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(e.url()+query, hdr)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { ws.Close() })
	return &rawConn{t: t, ws: ws}, 101
}

func (r *rawConn) send(b []byte) {
	r.t.Helper()
	if err := r.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// until reads frames until a Nack, a Welcome (when welcome is set) or the
// close, and says what ended it.
func (r *rawConn) until(welcome bool) outcome {
	r.t.Helper()
	var code schemas.Code
	_ = r.ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, data, err := r.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return outcome{close: ce.Code, code: code}
			}
			r.t.Fatalf("read: %v", err)
		}
		ft, body, err := schemas.SplitFrame(data)
		if err != nil {
			r.t.Fatalf("server frame: %v", err)
		}
		switch ft {
		case schemas.FrameWelcome:
			if welcome {
				return outcome{}
			}
		case schemas.FrameNack:
			var n schemas.Nack
			if err := n.UnmarshalBinary(body); err != nil {
				r.t.Fatal(err)
			}
			return outcome{nack: schemas.Code(n.Code)}
		case schemas.FrameError:
			var ef schemas.ErrorFrame
			if err := ef.UnmarshalBinary(body); err != nil {
				r.t.Fatal(err)
			}
			code = schemas.Code(ef.Code)
		}
	}
}

// Every bad input gets its exact error, changes nothing in the log, and a
// client editing the same document all along never notices.
func TestBadInputs(t *testing.T) {
	e := newEnv(t, tableLimits)
	const doc = "bad"
	var observerDrops atomic.Int32
	obs := e.client(doc, "olga", client.Config{OnState: func(up bool, _ error) {
		if !up {
			observerDrops.Add(1)
		}
	}})
	ctx := ctxTimeout(t, 120*time.Second)
	if _, err := obs.Insert(0, "seed"); err != nil {
		t.Fatal(err)
	}
	if err := obs.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}

	good := func(sub string) string { return e.token(sub, auth.Docs{Write: []string{"*"}}, time.Hour) }
	helloOf := func(tok string, site uint32, pending ...[]byte) []byte {
		return frameOf(t, schemas.FrameHello, &schemas.Hello{Token: tok, Doc: doc, Site: site, Batch: 1, Pending: pending})
	}
	submit := func(ops ...[]byte) []byte {
		return frameOf(t, schemas.FrameSubmit, &schemas.Submit{Batch: 2, Ops: ops})
	}
	v1 := []string{schemas.Subprotocol}
	expired := e.iss.Claims("eve", "", writeAll(), time.Hour)
	expired["exp"] = time.Now().Add(-time.Minute).Unix()
	expired["iat"] = time.Now().Add(-2 * time.Hour).Unix()
	otherKey := authtest.EdDSAIssuer(t, "k1") // same kid, another key
	otherTok, _ := otherKey.Issue("eve", "", writeAll(), time.Hour)
	bigOp := opsOf(900, 1, strings.Repeat("x", 2100))[0]
	longOp := opsOf(901, 1, strings.Repeat("y", 250))[0] // small enough to send, too long for the document
	if len(longOp) > tableLimits.MaxOpBytes || len(bigOp) <= tableLimits.MaxOpBytes {
		t.Fatalf("op sizes %d and %d do not fit the limits", len(longOp), len(bigOp))
	}
	badVersion := bytes.Clone(opsOf(902, 1, "z")[0])
	badVersion[0] = 9
	submitV2 := frameOf(t, schemas.FrameSubmit, &schemas.Submit{Batch: 2, Ops: opsOf(903, 1, "a")})
	submitV2[1] = 2 // The Submit message's own version byte.

	type step func(r *rawConn)
	cases := []struct {
		name      string
		query     string
		protocols []string
		header    http.Header
		hello     []byte        // nil: no Hello at all
		helloFn   func() []byte // builds the Hello when the case runs (short-lived tokens)
		open      bool          // Hello must succeed before steps
		steps     []step
		want      outcome
	}{
		{name: "malformed frame", protocols: v1, hello: helloOf(good("eve"), 101), open: true,
			steps: []step{func(r *rawConn) { r.send([]byte{0xff, 1, 2, 3}) }}, want: outcome{close: schemas.CloseMalformed, code: schemas.CodeBadFrame}},
		{name: "truncated hello", protocols: v1, hello: helloOf(good("eve"), 102)[:6],
			want: outcome{close: schemas.CloseMalformed, code: schemas.CodeBadFrame}},
		{name: "first frame not hello", protocols: v1, hello: submit(opsOf(103, 1, "a")...),
			want: outcome{close: schemas.CloseMalformed, code: schemas.CodeBadFrame}},
		{name: "missing subprotocol", protocols: nil, hello: helloOf(good("eve"), 104),
			want: outcome{close: schemas.CloseUnsupportedVersion, code: schemas.CodeUnsupportedVersion}},
		{name: "wrong subprotocol", protocols: []string{"palimpsest.v0"}, hello: helloOf(good("eve"), 105),
			want: outcome{close: schemas.CloseUnsupportedVersion, code: schemas.CodeUnsupportedVersion}},
		{name: "text frame", protocols: v1, hello: helloOf(good("eve"), 106), open: true,
			steps: []step{func(r *rawConn) { _ = r.ws.WriteMessage(websocket.TextMessage, []byte(`{"submit":1}`)) }},
			want:  outcome{close: schemas.CloseMalformed, code: schemas.CodeBadFrame}},
		{name: "oversized frame", protocols: v1, hello: helloOf(good("eve"), 107), open: true,
			steps: []step{func(r *rawConn) { r.send(make([]byte, tableLimits.MaxFrameBytes+1)) }},
			want:  outcome{close: schemas.CloseTooLarge, code: schemas.CodeTooLarge}},
		{name: "oversized op", protocols: v1, hello: helloOf(good("eve"), 900), open: true,
			steps: []step{func(r *rawConn) { r.send(submit(bigOp)) }}, want: outcome{nack: schemas.CodeTooLarge}},
		{name: "oversized batch", protocols: v1, hello: helloOf(good("eve"), 108), open: true,
			steps: []step{func(r *rawConn) { r.send(submit(opsOf(108, tableLimits.MaxOpsPerBatch+1, "b")...)) }}, want: outcome{nack: schemas.CodeTooLarge}},
		{name: "oversized pending in hello", protocols: v1, hello: helloOf(good("eve"), 109, opsOf(109, tableLimits.MaxOpsPerBatch+1, "b")...),
			want: outcome{nack: schemas.CodeTooLarge}},
		{name: "document too large", protocols: v1, hello: helloOf(good("eve"), 901), open: true,
			steps: []step{func(r *rawConn) { r.send(submit(longOp)) }}, want: outcome{nack: schemas.CodeDocumentTooLarge}},
		{name: "unknown op version", protocols: v1, hello: helloOf(good("eve"), 902), open: true,
			steps: []step{func(r *rawConn) { r.send(submit(badVersion)) }}, want: outcome{nack: schemas.CodeUnsupportedVersion}},
		{name: "unknown message version", protocols: v1, hello: helloOf(good("eve"), 903), open: true,
			steps: []step{func(r *rawConn) { r.send(submitV2) }}, want: outcome{close: schemas.CloseUnsupportedVersion, code: schemas.CodeUnsupportedVersion}},
		{name: "op that skips counters", protocols: v1, hello: helloOf(good("eve"), 131), open: true,
			steps: []step{func(r *rawConn) { r.send(submit(opsOf(131, 2, "c")[1])) }}, want: outcome{nack: schemas.CodeCounterGap}},
		{name: "batch whose second op skips counters", protocols: v1, hello: helloOf(good("eve"), 132), open: true,
			steps: []step{func(r *rawConn) { ops := opsOf(132, 3, "d"); r.send(submit(ops[0], ops[2])) }}, want: outcome{nack: schemas.CodeCounterGap}},
		{name: "undecodable op", protocols: v1, hello: helloOf(good("eve"), 110), open: true,
			steps: []step{func(r *rawConn) { r.send(submit([]byte{1, 1, 0x80})) }}, want: outcome{nack: schemas.CodeBadOp}},
		{name: "good batch after a refused one", protocols: v1, hello: helloOf(good("eve"), 111), open: true,
			steps: []step{func(r *rawConn) {
				r.send(submit([]byte{1, 1, 0x80}))
				if o := r.until(false); o.nack != schemas.CodeBadOp {
					r.t.Fatalf("first batch: %+v", o)
				}
				r.send(submit(opsOf(111, 1, "ok")...))
			}}, want: outcome{nack: schemas.CodeOutOfOrder}},
		{name: "expired token", protocols: v1, hello: helloOf(authtest.Sign(t, e.iss, expired), 112),
			want: outcome{close: schemas.CloseAuthExpired, code: schemas.CodeAuthExpired}},
		{name: "forged token", protocols: v1, hello: helloOf(authtest.Tamper(e.token("eve", auth.Docs{Read: []string{"*"}}, time.Hour), map[string]any{"sub": "eve", "exp": time.Now().Add(time.Hour).Unix(), "docs": writeAll()}), 113),
			want: outcome{close: schemas.CloseUnauthenticated, code: schemas.CodeUnauthenticated}},
		{name: "none-alg token", protocols: v1, hello: helloOf(authtest.NoneToken(map[string]any{"sub": "eve", "exp": time.Now().Add(time.Hour).Unix(), "docs": writeAll()}), 114),
			want: outcome{close: schemas.CloseUnauthenticated, code: schemas.CodeUnauthenticated}},
		{name: "token of an unknown key", protocols: v1, hello: helloOf(otherTok, 115),
			want: outcome{close: schemas.CloseUnauthenticated, code: schemas.CodeUnauthenticated}},
		{name: "no token", protocols: v1, hello: helloOf("", 116),
			want: outcome{close: schemas.CloseUnauthenticated, code: schemas.CodeUnauthenticated}},
		{name: "token in the URL", query: "?token=" + good("eve"), protocols: v1, want: outcome{http: http.StatusBadRequest}},
		{name: "origin not allowed", protocols: v1, header: http.Header{"Origin": {"https://evil.example"}}, want: outcome{http: http.StatusForbidden}},
		{name: "no access to the document", protocols: v1, hello: helloOf(e.token("eve", auth.Docs{Read: []string{"other-*"}}, time.Hour), 117),
			want: outcome{close: schemas.CloseForbidden, code: schemas.CodeForbidden}},
		{name: "write with a read-only claim", protocols: v1, hello: helloOf(e.token("eve", auth.Docs{Read: []string{"*"}}, time.Hour), 118), open: true,
			steps: []step{func(r *rawConn) { r.send(submit(opsOf(118, 1, "w")...)) }}, want: outcome{nack: schemas.CodeForbidden}},
		{name: "forged site in an op", protocols: v1, hello: helloOf(good("eve"), 119), open: true,
			steps: []step{func(r *rawConn) { r.send(submit(opsOf(obs.Site(), 1, "as olga")...)) }}, want: outcome{nack: schemas.CodeSiteMismatch}},
		{name: "another author's site", protocols: v1, hello: helloOf(good("eve"), obs.Site()),
			want: outcome{close: schemas.CloseForbidden, code: schemas.CodeForbidden}},
		{name: "auth frame of another user", protocols: v1, hello: helloOf(good("eve"), 120), open: true,
			steps: []step{func(r *rawConn) { r.send(frameOf(t, schemas.FrameAuth, &schemas.Auth{Token: good("mallory")})) }},
			want:  outcome{close: schemas.CloseForbidden, code: schemas.CodeForbidden}},
		{name: "flooding past the rate limit", protocols: v1, hello: helloOf(good("eve"), 121), open: true,
			steps: []step{func(r *rawConn) {
				p := frameOf(t, schemas.FramePresence, &schemas.Presence{})
				for range 4 * tableLimits.FramesBurst {
					if r.ws.WriteMessage(websocket.BinaryMessage, p) != nil {
						return // Closed already.
					}
				}
			}}, want: outcome{close: schemas.CloseRateLimited, code: schemas.CodeRateLimited}},
		{name: "no hello in time", protocols: v1, want: outcome{close: schemas.CloseMalformed, code: schemas.CodeBadFrame}},
		{name: "token expires mid-connection", protocols: v1, helloFn: func() []byte { return helloOf(e.token("eve", writeAll(), 2*time.Second), 122) }, open: true,
			want: outcome{close: schemas.CloseAuthExpired, code: schemas.CodeAuthExpired}},
	}
	// eve owns her sites; olga's site is olga's.
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			before := len(e.logEvents(doc))
			r, status := e.dialRaw(t, tc.query, tc.protocols, tc.header)
			var got outcome
			if r == nil {
				got = outcome{http: status}
			} else {
				r.t = t
				if tc.helloFn != nil {
					tc.hello = tc.helloFn()
				}
				if tc.hello != nil {
					r.send(tc.hello)
				}
				if tc.open {
					if o := r.until(true); o != (outcome{}) {
						t.Fatalf("hello refused: %+v", o)
					}
				}
				for _, s := range tc.steps {
					s(r)
				}
				got = r.until(false)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if after := len(e.logEvents(doc)); after != before {
				t.Errorf("the log changed: %d events, %d before", after, before)
			}
		})
	}

	// A fresh token sent before expiry keeps the connection.
	t.Run("fresh_token_before_expiry", func(t *testing.T) {
		r, _ := e.dialRaw(t, "", v1, nil)
		r.send(helloOf(e.token("eve", writeAll(), 2*time.Second), 130))
		if o := r.until(true); o != (outcome{}) {
			t.Fatalf("hello refused: %+v", o)
		}
		r.send(frameOf(t, schemas.FrameAuth, &schemas.Auth{Token: e.token("eve", writeAll(), time.Hour)}))
		<-time.After(3 * time.Second) // Past the first token's expiry.
		r.send(submit(opsOf(130, 1, "still here")...))
		_ = r.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, data, err := r.ws.ReadMessage()
			if err != nil {
				t.Fatalf("connection closed after a fresh token: %v", err)
			}
			if ft, _, _ := schemas.SplitFrame(data); ft == schemas.FrameAck {
				break
			}
		}
	})

	if n := observerDrops.Load(); n != 0 {
		t.Errorf("the observer was disconnected %d times", n)
	}
	want, _, last := e.replay(doc)
	if err := obs.WaitSeq(ctx, last); err != nil {
		t.Fatal(err)
	}
	if got := obs.Text(); got != want {
		t.Errorf("observer %q, log %q", got, want)
	}
}
