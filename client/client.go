package client

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// Config says which document to edit where. URL, Doc and Token are required.
type Config struct {
	// URL is the gateway's WebSocket endpoint, like ws://localhost:8080/v1/ws.
	URL string
	Doc string
	// Token returns the JWT to send; it is called at every connect and again
	// shortly before the token expires (the fresh one goes in an Auth frame).
	Token func(ctx context.Context) (string, error)
	// Header is added to the upgrade request (an Origin, a Cookie).
	Header http.Header
	// Site is this replica's CRDT site; 0 takes the Store's, else a random one.
	Site uint32
	// Store, when set, keeps the pending ops across restarts.
	Store Store
	// Rand drives identifier allocation; default seeded from crypto/rand.
	Rand crdt.Rand

	// OnChange receives the text changes of remote ops (local edits are not
	// reported: the caller made them).
	OnChange func([]crdt.Change)
	// OnEvent receives every event applied from the log, own ops included.
	OnEvent func(Event)
	// OnAck receives the dots of the ops of each acknowledged batch.
	OnAck func([]crdt.Dot)
	// OnPresence receives other users' cursors and leavings.
	OnPresence func(schemas.PresenceUpdate)
	// OnState is told when the client connects (true, after the catch-up
	// events are queued) or loses its connection (false, with the reason).
	OnState func(connected bool, err error)

	// MinBackoff and MaxBackoff bound the wait between reconnects
	// (exponential, with jitter). Defaults 50 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// MaxInflight is how many batches may wait for their ack. Default 8.
	MaxInflight int
	Dialer      *websocket.Dialer
	Logger      *slog.Logger
}

// StaticToken returns a Token function that always returns tok.
func StaticToken(tok string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return tok, nil }
}

// Event is one event of the document's log as the client applied it.
type Event struct {
	Seq, Prev uint64
	Site      uint32
	Counter   uint32
	Author    string
	Time      time.Time
	Local     bool // the op is this client's own
}

// Errors of the client.
var (
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client: closed")
	// ErrReadOnly: the token does not grant writing the document.
	ErrReadOnly = errors.New("client: the document is read-only for this token")
	// ErrNotReady: pending ops were restored from the Store and the client has
	// not caught up with the log yet, so it cannot edit.
	ErrNotReady = errors.New("client: restoring; edits wait until the client has caught up with the log")
)

// FatalError ends the client: the server refused something a reconnect
// cannot fix (a forbidden document, a refused op). Code is the server's.
type FatalError struct {
	Code schemas.Code
	Msg  string
}

func (e *FatalError) Error() string { return fmt.Sprintf("client: %s: %s", e.Code, e.Msg) }

// Client is one replica of one document. It is safe for concurrent use.
type Client struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	cond     *sync.Cond // broadcast on every state change
	doc      *crdt.Doc
	site     uint32
	lastSeq  uint64
	pending  []pendingOp
	sent     int // pending[:sent] were sent on the current connection
	inflight []inflightBatch
	batch    uint64
	welcome  *schemas.Welcome // of the current connection; nil while offline
	caughtUp bool             // the current connection's catch-up is done
	restored bool             // pending ops came from the Store and no catch-up was done yet
	readOnly bool
	closed   bool
	fatal    error
	wake     chan struct{}
	presence *schemas.Presence

	stop chan struct{}
	done chan struct{}
}

type pendingOp struct {
	raw []byte
	dot crdt.Dot
}

type inflightBatch struct {
	id uint64
	n  int
}

// Open starts a client; it connects in the background and works offline
// meanwhile. Close it when done.
func Open(cfg Config) (*Client, error) {
	if cfg.URL == "" || cfg.Doc == "" || cfg.Token == nil {
		return nil, errors.New("client: Config.URL, Doc and Token are required")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 8
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Rand == nil {
		var seed [16]byte
		_, _ = crand.Read(seed[:])
		cfg.Rand = rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))
	}
	c := &Client{cfg: cfg, log: cfg.Logger.With("doc", cfg.Doc), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	site := cfg.Site
	var restored [][]byte
	if cfg.Store != nil {
		s, pend, err := cfg.Store.Load(cfg.Doc)
		if err != nil {
			return nil, fmt.Errorf("client: load pending ops of %q: %w", cfg.Doc, err)
		}
		if s != 0 && len(pend) > 0 {
			site, restored = s, pend
		}
	}
	for site == 0 {
		site = uint32(cfg.Rand.Uint64())
	}
	c.site = site
	c.doc = crdt.New(crdt.SiteID(site), cfg.Rand)
	for _, raw := range restored {
		op, err := crdt.DecodeOp(raw)
		if err != nil || uint32(op.Site) != site {
			return nil, fmt.Errorf("client: a stored pending op of %q does not decode as site %d: %v", cfg.Doc, site, err)
		}
		if _, err := c.doc.Apply(op); err != nil {
			return nil, fmt.Errorf("client: stored pending op: %w", err)
		}
		c.pending = append(c.pending, pendingOp{raw: raw, dot: op.Dot()})
	}
	c.restored = len(restored) > 0
	go c.run()
	return c, nil
}

// Site returns the client's CRDT site.
func (c *Client) Site() uint32 { return c.site }

// Text returns the document's text as this replica sees it.
func (c *Client) Text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.doc.Text()
}

// Len returns the text's length in code points.
func (c *Client) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.doc.Len()
}

// Seq returns the sequence of the last event applied.
func (c *Client) Seq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSeq
}

// Pending returns how many local ops wait for the log's acknowledgement.
func (c *Client) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Err returns the error that ended the client, if any.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fatal
}

// Insert inserts text at code-point position pos, locally at once, and
// queues the op. It returns the op's dot.
func (c *Client) Insert(pos int, text string) (crdt.Dot, error) {
	return c.edit(func(d *crdt.Doc) (crdt.Op, error) { return d.Insert(pos, text) })
}

// Delete removes n code points at pos, locally at once, and queues the op.
func (c *Client) Delete(pos, n int) (crdt.Dot, error) {
	return c.edit(func(d *crdt.Doc) (crdt.Op, error) { return d.Delete(pos, n) })
}

func (c *Client) edit(f func(*crdt.Doc) (crdt.Op, error)) (crdt.Dot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.fatal != nil:
		return crdt.Dot{}, c.fatal
	case c.closed:
		return crdt.Dot{}, ErrClosed
	case c.readOnly:
		return crdt.Dot{}, ErrReadOnly
	case c.restored:
		return crdt.Dot{}, ErrNotReady
	}
	op, err := f(c.doc)
	if err != nil || op.IsZero() {
		return crdt.Dot{}, err
	}
	c.pending = append(c.pending, pendingOp{raw: crdt.AppendOp(nil, &op), dot: op.Dot()})
	c.saveLocked()
	c.cond.Broadcast()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return op.Dot(), nil
}

func (c *Client) saveLocked() {
	if c.cfg.Store == nil {
		return
	}
	raws := make([][]byte, len(c.pending))
	for i, p := range c.pending {
		raws[i] = p.raw
	}
	if err := c.cfg.Store.Save(c.cfg.Doc, c.site, raws); err != nil {
		c.log.Warn("client: save pending ops", "err", err)
	}
}

// SetCursor publishes this user's selection, from anchor to head (code-point
// positions); other users' clients get it as presence.
func (c *Client) SetCursor(anchor, head int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.presence = &schemas.Presence{Anchor: c.idBefore(anchor), Head: c.idBefore(head)}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// idBefore returns the identifier of the code point before pos, nil at 0.
func (c *Client) idBefore(pos int) []byte {
	if pos <= 0 {
		return nil
	}
	id, err := c.doc.IDAt(min(pos, c.doc.Len()) - 1)
	if err != nil {
		return nil
	}
	return []byte(id)
}

// PositionAfter returns the code-point position just after the identifier
// id of a presence update (0 for an empty or unknown id).
func (c *Client) PositionAfter(id []byte) int {
	if len(id) == 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.doc.IndexOf(crdt.ID(id)); ok {
		return i + 1
	}
	return 0
}

// Connected reports whether the client is connected and caught up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcome != nil && c.caughtUp
}

// WaitSynced waits until the client is connected, has applied the log up
// to what it was told on connecting, and has no pending ops.
func (c *Client) WaitSynced(ctx context.Context) error {
	return c.waitFor(ctx, func() bool { return c.welcome != nil && c.caughtUp && len(c.pending) == 0 })
}

// WaitSeq waits until the client has applied the event with sequence seq.
func (c *Client) WaitSeq(ctx context.Context, seq uint64) error {
	return c.waitFor(ctx, func() bool { return c.lastSeq >= seq })
}

// WaitConnected waits until the client is connected and caught up.
func (c *Client) WaitConnected(ctx context.Context) error {
	return c.waitFor(ctx, func() bool { return c.welcome != nil && c.caughtUp })
}

func (c *Client) waitFor(ctx context.Context, ok func() bool) error {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !ok() {
		if c.fatal != nil {
			return c.fatal
		}
		if c.closed {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		c.cond.Wait()
	}
	return nil
}

// Close disconnects and stops the client. Pending ops stay in the Store.
func (c *Client) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.stop)
		c.cond.Broadcast()
	}
	c.mu.Unlock()
	<-c.done
	return nil
}
