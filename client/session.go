package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// defaultMaxOps is the batch size used before the server has said its limit.
const defaultMaxOps = 256

// pingInterval is how often the client pings an idle connection.
const pingInterval = 15 * time.Second

// run connects, serves the connection until it breaks, waits a backoff and
// connects again, until Close or a fatal error.
func (c *Client) run() {
	defer close(c.done)
	backoff := c.cfg.MinBackoff
	for {
		welcomed, err := c.session()
		c.mu.Lock()
		c.welcome, c.caughtUp, c.sent, c.inflight = nil, false, 0, nil
		fatal, closed := c.fatal, c.closed
		c.cond.Broadcast()
		c.mu.Unlock()
		if c.cfg.OnState != nil && welcomed {
			c.cfg.OnState(false, err)
		}
		if fatal != nil || closed {
			return
		}
		if welcomed {
			backoff = c.cfg.MinBackoff
		}
		c.log.Debug("client: disconnected", "err", err, "retry_in", backoff)
		wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
		select {
		case <-c.stop:
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// transient are the Nack codes after which reconnecting and resending
// the pending ops is the fix.
func transient(code schemas.Code) bool {
	switch code {
	case schemas.CodeUnavailable, schemas.CodeOutOfOrder, schemas.CodeWrongSequence,
		schemas.CodeRateLimited, schemas.CodeGoingAway, schemas.CodeTooSlow, schemas.CodeInternal:
		return true
	}
	return false
}

// fatalClose are the close codes after which reconnecting cannot help.
func fatalClose(code int) bool {
	switch code {
	case schemas.CloseForbidden, schemas.CloseUnsupportedVersion, schemas.CloseUnauthenticated, schemas.CloseMalformed, schemas.CloseTooLarge:
		return true
	}
	return false
}

func (c *Client) setFatal(err error) {
	c.mu.Lock()
	if c.fatal == nil {
		c.fatal = err
	}
	c.cond.Broadcast()
	c.mu.Unlock()
}

// session serves one connection. welcomed reports that the server accepted
// the Hello.
func (c *Client) session() (welcomed bool, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	tok, err := c.cfg.Token(ctx)
	if err != nil {
		return false, fmt.Errorf("client: token: %w", err)
	}
	d := *c.cfg.Dialer
	d.Subprotocols = []string{schemas.Subprotocol}
	hdr := http.Header{}
	for k, v := range c.cfg.Header {
		hdr[k] = v
	}
	ws, resp, err := d.DialContext(ctx, c.cfg.URL, hdr)
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized) {
			c.setFatal(&FatalError{Code: schemas.CodeForbidden, Msg: "upgrade refused: " + resp.Status})
		}
		return false, err
	}
	defer ws.Close()
	stopClose := context.AfterFunc(ctx, func() { ws.Close() })
	defer stopClose()

	c.mu.Lock()
	maxOps := defaultMaxOps
	hello := schemas.Hello{Token: tok, Doc: c.cfg.Doc, LastSeq: c.lastSeq, Site: c.site}
	if n := min(len(c.pending), maxOps); n > 0 {
		c.batch++
		hello.Batch = c.batch
		for _, p := range c.pending[:n] {
			hello.Pending = append(hello.Pending, p.raw)
		}
		c.inflight = append(c.inflight[:0], inflightBatch{id: c.batch, n: n})
		c.sent = n
	}
	c.mu.Unlock()
	b, err := schemas.AppendFrame(nil, schemas.FrameHello, &hello)
	if err != nil {
		return false, err
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return false, err
	}
	refresh := make(chan time.Time, 1)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		if err := c.writeLoop(ctx, ws, refresh); err != nil && ctx.Err() == nil {
			c.log.Debug("client: write", "err", err)
		}
		ws.Close()
	}()
	defer func() { cancel(); <-writerDone }()

	var lastErr *schemas.ErrorFrame
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && fatalClose(ce.Code) {
				fe := &FatalError{Code: schemas.CodeForbidden, Msg: fmt.Sprintf("closed with %d %s", ce.Code, ce.Text)}
				if lastErr != nil {
					fe.Code, fe.Msg = schemas.Code(lastErr.Code), lastErr.Message
				}
				c.setFatal(fe)
			}
			return welcomed, err
		}
		t, body, err := schemas.SplitFrame(data)
		if err != nil {
			return welcomed, err
		}
		switch t {
		case schemas.FrameWelcome:
			var w schemas.Welcome
			if err := w.UnmarshalBinary(body); err != nil {
				return welcomed, err
			}
			if err := c.onWelcome(&w); err != nil {
				return welcomed, err
			}
			welcomed = true
			if w.Expires > 0 {
				select {
				case refresh <- renewAt(time.Unix(0, w.Expires)):
				default:
				}
			}
		case schemas.FrameEvent:
			var ev schemas.WireEvent
			if err := ev.UnmarshalBinary(body); err != nil {
				return welcomed, err
			}
			if err := c.onEvent(&ev); err != nil {
				return welcomed, err
			}
		case schemas.FrameAck:
			var a schemas.Ack
			if err := a.UnmarshalBinary(body); err != nil {
				return welcomed, err
			}
			if err := c.onAck(a.Batch); err != nil {
				return welcomed, err
			}
		case schemas.FrameNack:
			var n schemas.Nack
			if err := n.UnmarshalBinary(body); err != nil {
				return welcomed, err
			}
			code := schemas.Code(n.Code)
			if !transient(code) {
				c.setFatal(&FatalError{Code: code, Msg: n.Message})
			}
			return welcomed, fmt.Errorf("client: batch %d refused: %s", n.Batch, n.Message)
		case schemas.FramePresenceUpdate:
			var pu schemas.PresenceUpdate
			if err := pu.UnmarshalBinary(body); err != nil {
				return welcomed, err
			}
			if c.cfg.OnPresence != nil {
				c.cfg.OnPresence(pu)
			}
		case schemas.FrameError:
			var e schemas.ErrorFrame
			if err := e.UnmarshalBinary(body); err == nil {
				lastErr = &e
			}
		default:
			return welcomed, fmt.Errorf("client: unexpected frame %v", t)
		}
	}
}

func (c *Client) onWelcome(w *schemas.Welcome) error {
	var changes []crdt.Change
	c.mu.Lock()
	if len(w.Snapshot) > 0 && w.SnapshotSeq > c.lastSeq {
		d, err := crdt.LoadSnapshot(w.Snapshot, crdt.SiteID(c.site), c.cfg.Rand)
		if err != nil {
			c.mu.Unlock()
			return fmt.Errorf("client: snapshot: %w", err)
		}
		for _, p := range c.pending {
			op, _ := crdt.DecodeOp(p.raw)
			if _, err := d.Apply(op); err != nil {
				c.mu.Unlock()
				return fmt.Errorf("client: pending op over the snapshot: %w", err)
			}
		}
		old := c.doc.Text()
		c.doc, c.lastSeq = d, w.SnapshotSeq
		changes = []crdt.Change{{Kind: crdt.Deleted, Index: 0, Text: old}, {Kind: crdt.Inserted, Index: 0, Text: d.Text()}}
	}
	c.welcome = w
	c.readOnly = !w.Write
	if c.readOnly && len(c.pending) > 0 {
		c.mu.Unlock()
		c.setFatal(&FatalError{Code: schemas.CodeForbidden, Msg: "pending ops, but the token cannot write the document"})
		return ErrReadOnly
	}
	c.checkCaughtUpLocked()
	c.cond.Broadcast()
	caught := c.caughtUp
	c.mu.Unlock()
	if len(changes) > 0 && c.cfg.OnChange != nil {
		c.cfg.OnChange(changes)
	}
	if caught && c.cfg.OnState != nil {
		c.cfg.OnState(true, nil)
	}
	return nil
}

func (c *Client) checkCaughtUpLocked() {
	if !c.caughtUp && c.welcome != nil && c.lastSeq >= c.welcome.Head {
		c.caughtUp = true
		c.restored = false
	}
}

func (c *Client) onEvent(ev *schemas.WireEvent) error {
	c.mu.Lock()
	if ev.Seq <= c.lastSeq {
		c.mu.Unlock()
		return nil
	}
	if ev.Prev > c.lastSeq {
		c.mu.Unlock()
		return fmt.Errorf("client: gap: event %d follows %d, last applied %d", ev.Seq, ev.Prev, c.lastSeq)
	}
	op, err := crdt.DecodeOp(ev.Op)
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("client: event %d: %w", ev.Seq, err)
	}
	changes, err := c.doc.Apply(op)
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("client: apply event %d: %w", ev.Seq, err)
	}
	c.lastSeq = ev.Seq
	was := c.caughtUp
	c.checkCaughtUpLocked()
	now := c.caughtUp && !was
	c.cond.Broadcast()
	c.mu.Unlock()
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(Event{Seq: ev.Seq, Prev: ev.Prev, Site: ev.Site, Counter: ev.Counter, Author: ev.Author,
			Time: time.Unix(0, ev.Time), Local: ev.Site == c.site})
	}
	if len(changes) > 0 && c.cfg.OnChange != nil {
		c.cfg.OnChange(changes)
	}
	if now && c.cfg.OnState != nil {
		c.cfg.OnState(true, nil)
	}
	return nil
}

func (c *Client) onAck(batch uint64) error {
	c.mu.Lock()
	if len(c.inflight) == 0 || c.inflight[0].id != batch {
		c.mu.Unlock()
		return fmt.Errorf("client: ack of batch %d, which is not the oldest in flight", batch)
	}
	n := c.inflight[0].n
	c.inflight = c.inflight[1:]
	var dots []crdt.Dot
	if c.cfg.OnAck != nil {
		dots = make([]crdt.Dot, n)
		for i, p := range c.pending[:n] {
			dots[i] = p.dot
		}
	}
	c.pending = c.pending[n:]
	c.sent -= n
	c.saveLocked()
	c.cond.Broadcast()
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	if c.cfg.OnAck != nil {
		c.cfg.OnAck(dots)
	}
	return nil
}

// writeLoop sends the pending ops not yet sent, in batches, presence and
// fresh tokens, and pings.
func (c *Client) writeLoop(ctx context.Context, ws *websocket.Conn, refresh <-chan time.Time) error {
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	var renew <-chan time.Time
	for {
		var frames [][]byte
		c.mu.Lock()
		maxOps := defaultMaxOps
		if c.welcome != nil {
			maxOps = int(c.welcome.MaxOps)
		}
		for len(c.inflight) < c.cfg.MaxInflight && c.sent < len(c.pending) {
			n := min(len(c.pending)-c.sent, maxOps)
			s := schemas.Submit{Ops: make([][]byte, n)}
			for i, p := range c.pending[c.sent : c.sent+n] {
				s.Ops[i] = p.raw
			}
			c.batch++
			s.Batch = c.batch
			c.inflight = append(c.inflight, inflightBatch{id: c.batch, n: n})
			c.sent += n
			b, err := schemas.AppendFrame(nil, schemas.FrameSubmit, &s)
			if err != nil {
				c.mu.Unlock()
				return err
			}
			frames = append(frames, b)
		}
		if c.presence != nil && c.welcome != nil {
			if b, err := schemas.AppendFrame(nil, schemas.FramePresence, c.presence); err == nil {
				frames = append(frames, b)
			}
			c.presence = nil
		}
		c.mu.Unlock()
		for _, b := range frames {
			_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		case <-ping.C:
			if err := ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second)); err != nil {
				return err
			}
		case at := <-refresh:
			renew = time.After(time.Until(at))
		case <-renew:
			renew = nil
			tok, err := c.cfg.Token(ctx)
			if err != nil {
				c.log.Warn("client: refresh token", "err", err)
				renew = time.After(time.Second)
				continue
			}
			if exp, ok := tokenExpiry(tok); ok {
				renew = time.After(time.Until(renewAt(exp)))
			}
			b, err := schemas.AppendFrame(nil, schemas.FrameAuth, &schemas.Auth{Token: tok})
			if err != nil {
				return err
			}
			if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
				return err
			}
		}
	}
}

// renewAt is when to send a fresh token for one expiring at exp: a third of
// the time left before it, at most 30 s before.
func renewAt(exp time.Time) time.Time {
	return exp.Add(-min(30*time.Second, time.Until(exp)/3))
}

// tokenExpiry reads the exp claim of a JWT without verifying it (the server
// does): the client only needs to know when to fetch the next one.
func tokenExpiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(claims.Exp), 0), true
}
