package gateway

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
	"github.com/palimpsest-editor/palimpsest/services/auth"
)

// decodeMessage splits a frame and decodes its message into m when the
// frame's type is want. A message version this build does not read closes
// with CloseUnsupportedVersion, anything else malformed with CloseMalformed.
func (c *conn) decodeMessage(data []byte, want schemas.FrameType, m schemas.Message) bool {
	_, body, _ := schemas.SplitFrame(data)
	if err := m.UnmarshalBinary(body); err != nil {
		if schemas.CodeOf(err) == schemas.CodeUnsupportedVersion {
			c.fail(schemas.CloseUnsupportedVersion, schemas.CodeUnsupportedVersion, message(err))
		} else {
			c.fail(schemas.CloseMalformed, schemas.CodeBadFrame, message(err))
		}
		return false
	}
	return true
}

// authFail closes the connection for a token Verify refused.
func (c *conn) authFail(err error) {
	switch auth.CodeOf(err) {
	case auth.CodeExpired:
		c.fail(schemas.CloseAuthExpired, schemas.CodeAuthExpired, err.Error())
	case auth.CodeForbidden:
		c.fail(schemas.CloseForbidden, schemas.CodeForbidden, err.Error())
	case auth.CodeBadConfig:
		c.log.Error("gateway: token verification is misconfigured", "err", err)
		c.fail(schemas.CloseInternal, schemas.CodeInternal, "token verification failed on the server")
	default:
		c.fail(schemas.CloseUnauthenticated, schemas.CodeUnauthenticated, err.Error())
	}
}

// hello handles the first frame: authenticate, authorize, bind the site,
// join the document (Welcome, catch-up, live) and take the pending ops. It
// reports whether the connection is open.
func (c *conn) hello(data []byte, cookie string) bool {
	t, _, err := schemas.SplitFrame(data)
	if err != nil || t != schemas.FrameHello {
		c.fail(schemas.CloseMalformed, schemas.CodeBadFrame, "the first frame must be Hello")
		return false
	}
	var h schemas.Hello
	if !c.decodeMessage(data, schemas.FrameHello, &h) {
		return false
	}
	tok := h.Token
	if tok == "" {
		tok = cookie
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.g.cfg.Verifier.Verify(ctx, tok)
	if err != nil {
		c.authFail(err)
		return false
	}
	if err := eventlog.ValidateDocID(h.Doc); err != nil {
		c.fail(schemas.CloseMalformed, schemas.CodeBadDocumentID, err.Error())
		return false
	}
	if err := p.Authorize(h.Doc, auth.Read); err != nil {
		c.authFail(err)
		return false
	}
	if h.Site == 0 {
		c.fail(schemas.CloseMalformed, schemas.CodeBadFrame, "Hello.Site must not be 0")
		return false
	}
	write := p.CanWrite(h.Doc)
	if write {
		if err := c.g.cfg.Sites.Claim(ctx, h.Doc, h.Site, p.Subject); err != nil {
			if schemas.CodeOf(err) == schemas.CodeForbidden {
				c.fail(schemas.CloseForbidden, schemas.CodeForbidden, err.Error())
			} else {
				c.log.Warn("gateway: claim site", "doc", h.Doc, "site", h.Site, "err", err)
				c.fail(schemas.CloseInternal, schemas.CodeUnavailable, "the site registry is unavailable; retry")
			}
			return false
		}
		c.claimed = true
	}
	c.doc, c.site = h.Doc, h.Site
	c.log = c.log.With("doc", c.doc, "site", c.site, "user", p.Subject)
	c.principal.Store(p)
	c.armExpiry(p)
	hb, err := c.g.acquire(ctx, h.Doc)
	if err != nil {
		c.log.Warn("gateway: open document", "err", err)
		c.fail(schemas.CloseInternal, schemas.CodeUnavailable, "the event log is unavailable; retry")
		return false
	}
	c.hub = hb
	c.g.metrics.connections.Inc()
	lim := c.g.cfg.Limits
	w := schemas.Welcome{Doc: h.Doc, Site: h.Site, Author: p.Subject, Write: write,
		MaxFrame: uint32(lim.MaxFrameBytes), MaxOps: uint32(lim.MaxOpsPerBatch), MaxOp: uint32(lim.MaxOpBytes),
		Expires: p.ExpiresAt.UnixNano()}
	if err := hb.join(c, h.LastSeq, w); err != nil {
		c.log.Warn("gateway: catch up", "err", err)
		c.fail(schemas.CloseInternal, schemas.CodeUnavailable, "reading the document failed; retry")
		return false
	}
	if len(h.Pending) > 0 {
		c.submit(h.Batch, h.Pending)
	}
	return true
}

// armExpiry closes the connection with CloseAuthExpired when p's token
// expires, unless an Auth frame brings a fresh one first.
func (c *conn) armExpiry(p *auth.Principal) {
	d := p.Remaining(c.g.cfg.Now())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.expiry = time.AfterFunc(d, func() {
		c.fail(schemas.CloseAuthExpired, schemas.CodeAuthExpired, "the token expired; send Auth before it does")
	})
}

// handle serves one frame after Hello.
func (c *conn) handle(data []byte) {
	if !c.frames.Allow() {
		c.fail(schemas.CloseRateLimited, schemas.CodeRateLimited, "over the frame rate limit")
		return
	}
	t, _, err := schemas.SplitFrame(data)
	if err != nil {
		c.fail(schemas.CloseMalformed, schemas.CodeBadFrame, message(err))
		return
	}
	c.g.metrics.frame(t)
	switch t {
	case schemas.FrameSubmit:
		var s schemas.Submit
		if c.decodeMessage(data, t, &s) {
			c.submit(s.Batch, s.Ops)
		}
	case schemas.FramePresence:
		var p schemas.Presence
		if c.decodeMessage(data, t, &p) {
			c.presence(p)
		}
	case schemas.FrameAuth:
		var a schemas.Auth
		if c.decodeMessage(data, t, &a) {
			c.reauth(a.Token)
		}
	default:
		c.fail(schemas.CloseMalformed, schemas.CodeBadFrame, "unexpected frame "+t.String())
	}
}

// submit validates a batch and queues its append; the acker answers it.
// Nothing of a refused batch is appended, and every later batch of the
// connection is refused too (out_of_order), because a site's ops must land in
// counter order: the client resends from the refused batch on a new
// connection.
func (c *conn) submit(batch uint64, raw [][]byte) {
	now := time.Now()
	if !c.ops.AllowN(now, len(raw)) {
		c.fail(schemas.CloseRateLimited, schemas.CodeRateLimited, "over the op rate limit")
		return
	}
	var ops []eventlog.Op
	if c.blocked == nil {
		ops, c.blocked = c.check(raw)
	} else if c.blocked.Code != schemas.CodeOutOfOrder {
		c.blocked = schemas.Errorf(schemas.CodeOutOfOrder, nil, "an earlier batch of this connection was refused (%s); reconnect and resend from it", c.blocked.Code)
	}
	c.mu.Lock()
	if c.closingSt {
		c.mu.Unlock()
		return // Not taken; the client resends it after reconnecting.
	}
	c.inflight.Add(1)
	c.mu.Unlock()
	if c.blocked != nil {
		c.acks <- pendingAck{batch: batch, err: c.blocked, start: now}
		return
	}
	p := c.principal.Load()
	for i := range ops {
		ops[i].Author = p.Subject
	}
	c.acks <- pendingAck{batch: batch, req: c.g.committer.submit(c.doc, ops), start: now}
}

// check validates a batch and returns its ops for the log (without their
// author); a non-nil error means it may not be appended.
func (c *conn) check(raw [][]byte) ([]eventlog.Op, *schemas.Error) {
	lim := c.g.cfg.Limits
	p := c.principal.Load()
	if !p.CanWrite(c.doc) {
		return nil, schemas.Errorf(schemas.CodeForbidden, nil, "user %q may not write document %q", p.Subject, c.doc)
	}
	if !c.claimed {
		// The token that opened the connection could not write; a fresh one can.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.g.cfg.Sites.Claim(ctx, c.doc, c.site, p.Subject); err != nil {
			var se *schemas.Error
			if !errors.As(err, &se) {
				se = schemas.Errorf(schemas.CodeUnavailable, err, "site registry")
			}
			return nil, se
		}
		c.claimed = true
	}
	if len(raw) > lim.MaxOpsPerBatch {
		return nil, schemas.Errorf(schemas.CodeTooLarge, nil, "%d ops in a batch, at most %d", len(raw), lim.MaxOpsPerBatch)
	}
	var grow int64
	ops := make([]eventlog.Op, len(raw))
	for i, b := range raw {
		if len(b) > lim.MaxOpBytes {
			return nil, schemas.Errorf(schemas.CodeTooLarge, nil, "op %d: %d bytes, at most %d", i, len(b), lim.MaxOpBytes)
		}
		op, err := crdt.DecodeOp(b)
		if err != nil {
			if crdt.CodeOf(err) == crdt.CodeBadVersion {
				return nil, schemas.Errorf(schemas.CodeUnsupportedVersion, err, "op %d", i)
			}
			return nil, schemas.Errorf(schemas.CodeBadOp, err, "op %d", i)
		}
		if uint32(op.Site) != c.site {
			return nil, schemas.Errorf(schemas.CodeSiteMismatch, nil, "op %d: site %d, the connection's site is %d", i, op.Site, c.site)
		}
		ops[i] = eventlog.Op{Site: uint32(op.Site), Counter: op.Counter, Span: op.Span(), Payload: b}
		if op.Kind == crdt.OpInsert {
			grow += int64(op.Len())
		}
	}
	if grow > 0 && c.hub.length()+grow > lim.MaxDocumentChars {
		return nil, schemas.Errorf(schemas.CodeDocumentTooLarge, nil, "document %q would exceed %d code points", c.doc, lim.MaxDocumentChars)
	}
	return ops, nil
}

// presence publishes the sender's cursor on core NATS, stamped with its
// user; every gateway with the document open fans it out.
func (c *conn) presence(p schemas.Presence) {
	for _, id := range [][]byte{p.Anchor, p.Head} {
		if len(id) == 0 {
			continue
		}
		if len(id) > 12*crdt.MaxDepth {
			c.fail(schemas.CloseMalformed, schemas.CodeBadFrame, "presence identifier too long")
			return
		}
		if err := crdt.ID(id).Validate(); err != nil {
			c.fail(schemas.CloseMalformed, schemas.CodeBadFrame, "presence identifier: "+err.Error())
			return
		}
	}
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	c.anchor, c.head, c.present = slices.Clone(p.Anchor), slices.Clone(p.Head), true
	c.publishPresence(p.Anchor, p.Head, false)
}

// repeatPresence publishes the connection's presence again, if it has one, so
// that other gateways keep it (Config.PresenceTTL).
func (c *conn) repeatPresence() {
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	if c.present {
		c.publishPresence(c.anchor, c.head, false)
	}
}

// publishPresence publishes the user's cursor, or that the user is gone, on
// core NATS. The caller holds presenceMu.
func (c *conn) publishPresence(anchor, head []byte, gone bool) {
	p := c.principal.Load()
	if p == nil {
		return
	}
	b, err := schemas.AppendFrame(nil, schemas.FramePresenceUpdate, &schemas.PresenceUpdate{
		Site: c.site, User: p.Subject, Name: p.Name, Anchor: anchor, Head: head, Gone: gone})
	if err != nil {
		return
	}
	if err := c.g.cfg.NATS.Publish(c.g.presenceSubject(c.doc), b); err != nil {
		c.log.Debug("gateway: publish presence", "err", err)
	}
}

// reauth replaces the connection's token with a fresh one of the same
// subject that still grants the document.
func (c *conn) reauth(tok string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.g.cfg.Verifier.Verify(ctx, tok)
	if err != nil {
		c.authFail(err)
		return
	}
	if old := c.principal.Load(); p.Subject != old.Subject {
		c.fail(schemas.CloseForbidden, schemas.CodeForbidden, "Auth: the new token is for another user")
		return
	}
	if err := p.Authorize(c.doc, auth.Read); err != nil {
		c.authFail(err)
		return
	}
	c.principal.Store(p)
	c.armExpiry(p)
}
