package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// hubIdle is how long a document's hub outlives its last connection, so a
// client that reconnects at once finds its recent events in memory.
const hubIdle = 30 * time.Second

// hub is one document in one gateway process: one log subscription, whose
// events it encodes once and queues on every local connection of the
// document, and one core NATS subscription for the document's presence.
type hub struct {
	g      *Gateway
	doc    string
	ctx    context.Context
	cancel context.CancelFunc
	ready  chan struct{} // closed when started; err says whether it failed
	err    error
	done   chan struct{} // closed when run returns

	mu       sync.Mutex
	refs     int // connections joined or joining
	conns    map[*conn]struct{}
	last     uint64                   // sequence of the last event fanned out, or the head at start
	skipped  uint64                   // sequence of the last undecodable event, skipped
	ring     []ringEntry              // the most recent events, oldest first
	chars    int64                    // the document's length in code points, from the ops' headers
	presence map[uint32]presenceEntry // the latest of each site, and when it came
	idle     *time.Timer
}

type presenceEntry struct {
	f  *frame
	at time.Time
}

type ringEntry struct {
	seq, prev uint64
	f         *frame
}

// acquire returns the running hub of doc, starting it when there is none,
// and counts a reference until release.
func (g *Gateway) acquire(ctx context.Context, doc string) (*hub, error) {
	g.mu.Lock()
	h := g.hubs[doc]
	if h == nil {
		hctx, cancel := context.WithCancel(context.Background())
		h = &hub{g: g, doc: doc, ctx: hctx, cancel: cancel, ready: make(chan struct{}), done: make(chan struct{}),
			conns: map[*conn]struct{}{}, presence: map[uint32]presenceEntry{}}
		g.hubs[doc] = h
		g.metrics.documents.Inc()
		go h.run()
	}
	h.refs++
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
	g.mu.Unlock()
	select {
	case <-h.ready:
	case <-ctx.Done():
		g.release(h)
		return nil, ctx.Err()
	}
	if h.err != nil {
		g.release(h)
		return nil, h.err
	}
	return h, nil
}

// release drops a reference; the hub stops hubIdle after its last one.
func (g *Gateway) release(h *hub) {
	g.mu.Lock()
	defer g.mu.Unlock()
	h.refs--
	if h.refs > 0 {
		return
	}
	if h.err != nil {
		g.removeLocked(h)
		return
	}
	h.idle = time.AfterFunc(hubIdle, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if h.refs == 0 {
			g.removeLocked(h)
		}
	})
}

func (g *Gateway) removeLocked(h *hub) {
	if g.hubs[h.doc] == h {
		delete(g.hubs, h.doc)
		g.metrics.documents.Dec()
	}
	h.cancel()
}

// run starts the subscriptions and fans events out until the hub is
// cancelled.
func (h *hub) run() {
	defer close(h.done)
	sub, psub, err := h.start()
	h.err = err
	close(h.ready)
	if err != nil {
		h.g.log.Warn("gateway: open document", "doc", h.doc, "err", err)
		return
	}
	defer sub.Stop()
	defer psub.Unsubscribe() //nolint:errcheck // best effort on the way out
	wait := 10 * time.Millisecond
	for {
		ev, err := sub.Next(h.ctx)
		if h.ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, eventlog.ErrBadEvent) {
			h.g.log.Warn("gateway: document subscription", "doc", h.doc, "err", err)
			select {
			case <-h.ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, time.Second)
			continue
		}
		wait = 10 * time.Millisecond
		h.fanout(ev, err)
	}
}

func (h *hub) start() (*eventlog.Subscription, *nats.Subscription, error) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	l := h.g.cfg.Log
	head, err := l.LastSeq(ctx, h.doc)
	if errors.Is(err, eventlog.ErrUnknownDocument) {
		head, err = 0, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var chars int64
	if head > 0 {
		err := l.Read(ctx, h.doc, 1, head, func(ev eventlog.Event, err error) error {
			if err == nil {
				chars += opChars(ev.Payload)
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	sub, err := l.Subscribe(ctx, h.doc, head+1)
	if err != nil {
		return nil, nil, err
	}
	psub, err := h.g.cfg.NATS.Subscribe(h.g.presenceSubject(h.doc), h.onPresence)
	if err != nil {
		sub.Stop()
		return nil, nil, schemas.Errorf(schemas.CodeUnavailable, err, "document %q: presence subscription", h.doc)
	}
	h.mu.Lock()
	h.last, h.chars = head, chars
	h.mu.Unlock()
	return sub, psub, nil
}

// opChars returns how many code points an encoded op adds (an insert) or
// removes (a delete, negative), read from its header alone: version, kind,
// uvarint site, counter and element count.
func opChars(op []byte) int64 {
	if len(op) < 2 {
		return 0
	}
	kind := op[1]
	p := op[2:]
	var n uint64
	for range 3 { // site, counter, element count
		x, k := binary.Uvarint(p)
		if k <= 0 {
			return 0
		}
		p, n = p[k:], x
	}
	switch kind {
	case 1:
		return int64(n)
	case 2:
		return -int64(n)
	}
	return 0
}

// eventFrame encodes a log event as the frame every client receives.
func eventFrame(ev eventlog.Event, prev uint64) (*frame, error) {
	return messageFrame(schemas.FrameEvent, &schemas.WireEvent{Seq: ev.Seq, Prev: prev, Site: ev.Site,
		Counter: ev.Counter, Author: ev.Author, Time: ev.Time, Op: ev.Payload})
}

// fanout queues one event on every connection of the document: encoded
// once, the same bytes for all. An undecodable event is skipped, and the
// next event's prev points past it, so clients see no gap.
func (h *hub) fanout(ev eventlog.Event, evErr error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ev.Seq <= h.last {
		return
	}
	if evErr != nil {
		h.g.log.Warn("gateway: undecodable event skipped", "doc", h.doc, "seq", ev.Seq, "err", evErr)
		h.skipped = ev.Seq
		return
	}
	prev := ev.PrevSeq
	if prev != 0 && prev == h.skipped {
		prev = h.last
	}
	f, err := eventFrame(ev, prev)
	if err != nil {
		h.g.log.Warn("gateway: event does not encode", "doc", h.doc, "seq", ev.Seq, "err", err)
		h.skipped = ev.Seq
		return
	}
	h.last = ev.Seq
	h.chars += opChars(ev.Payload)
	h.ring = append(h.ring, ringEntry{seq: ev.Seq, prev: prev, f: f})
	if n := len(h.ring); n > h.g.cfg.Limits.RingSize {
		h.ring = h.ring[n-h.g.cfg.Limits.RingSize:]
	}
	h.g.metrics.broadcast.Inc()
	for c := range h.conns {
		c.send(f)
	}
}

// join registers c and queues, in this order, the Welcome, every event after
// last and then the live events. When the events after last are in the ring
// it is done at once; otherwise c holds live events while catchUp reads the
// log (or a snapshot plus the log's tail).
func (h *hub) join(c *conn, last uint64, w schemas.Welcome) error {
	h.mu.Lock()
	head := h.last
	w.Head = head
	i := sort.Search(len(h.ring), func(i int) bool { return h.ring[i].seq > last })
	if last >= head || (i < len(h.ring) && h.ring[i].prev <= last) {
		f, err := messageFrame(schemas.FrameWelcome, &w)
		if err != nil {
			h.mu.Unlock()
			return err
		}
		c.send(f)
		for _, e := range h.ring[i:] {
			c.send(e.f)
		}
		h.addLocked(c)
		h.mu.Unlock()
		return nil
	}
	c.hold()
	h.addLocked(c)
	h.mu.Unlock()
	return c.catchUp(last, head, w)
}

func (h *hub) addLocked(c *conn) {
	h.conns[c] = struct{}{}
	for site, p := range h.presence {
		if site != c.site {
			c.send(p.f)
		}
	}
}

func (h *hub) leave(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// length returns the document's length as counted from its ops.
func (h *hub) length() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.chars
}

// onPresence fans a presence update from any gateway out to the local
// connections of the document but the sender's, and keeps the latest of each
// site for connections that join later.
func (h *hub) onPresence(m *nats.Msg) {
	t, body, err := schemas.SplitFrame(m.Data)
	var pu schemas.PresenceUpdate
	if err == nil && t == schemas.FramePresenceUpdate {
		err = pu.UnmarshalBinary(body)
	}
	if err != nil || t != schemas.FramePresenceUpdate {
		h.g.log.Warn("gateway: bad presence message", "doc", h.doc, "err", err)
		return
	}
	f := &frame{b: append(wsHeader(make([]byte, 0, len(m.Data)+10), opBinary, len(m.Data)), m.Data...)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if pu.Gone {
		delete(h.presence, pu.Site)
	} else {
		old, ok := h.presence[pu.Site]
		h.presence[pu.Site] = presenceEntry{f: f, at: h.g.cfg.Now()}
		if ok && bytes.Equal(old.f.b, f.b) {
			return // a repeat that keeps the presence alive: nothing new to show
		}
	}
	h.fanOutPresenceLocked(pu.Site, f)
}

func (h *hub) fanOutPresenceLocked(site uint32, f *frame) {
	for c := range h.conns {
		if c.site != site {
			c.send(f)
		}
	}
}

// expirePresence forgets the sites whose presence is older than cutoff (their
// gateway stopped repeating it: it died without saying "gone") and tells the
// local connections they are gone. The sites of this hub's own connections
// are alive by definition and never expire here.
func (h *hub) expirePresence(cutoff time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	local := make(map[uint32]bool, len(h.conns))
	for c := range h.conns {
		local[c.site] = true
	}
	for site, p := range h.presence {
		if !p.at.Before(cutoff) || local[site] {
			continue
		}
		delete(h.presence, site)
		f, err := messageFrame(schemas.FramePresenceUpdate, &schemas.PresenceUpdate{Site: site, Gone: true})
		if err != nil {
			continue
		}
		h.fanOutPresenceLocked(site, f)
	}
}
