package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
	"github.com/palimpsest-editor/palimpsest/services/auth"
)

// closeWait is how long the server waits for the client's close frame after
// sending its own, before it drops the connection.
const closeWait = 2 * time.Second

// conn is one client connection: the reader (run), the acker and the writer.
type conn struct {
	g   *Gateway
	ws  *websocket.Conn
	nc  net.Conn
	log *slog.Logger

	// Set by Hello, read-only after.
	doc  string
	site uint32
	hub  *hub

	principal atomic.Pointer[auth.Principal]
	expiry    *time.Timer

	out      chan *frame
	catching atomic.Bool // live frames go to held while the log is read
	qmu      sync.Mutex
	held     []*frame

	mu        sync.Mutex
	closingSt bool
	closeCode int
	closeErr  *schemas.Error
	graceful  bool
	closing   chan struct{} // closed by closeWith
	inflight  sync.WaitGroup
	// presenceMu guards the user's latest cursor (anchor, head), which
	// repeatPresence publishes again while present, and is held across each
	// presence publish, so that publishes leave in the order the state
	// changed: no repeat of an old cursor after a new one or after "gone".
	presenceMu   sync.Mutex
	anchor, head []byte
	present      bool

	acks       chan pendingAck
	ackerDone  chan struct{}
	writerDone chan struct{}

	frames, ops *rate.Limiter
	blocked     *schemas.Error // after a Nack, later batches are refused
	claimed     bool           // the site is bound to the user (eventlog.SiteRegistry)
	rbuf        []byte
	lastDeadl   time.Time
}

type pendingAck struct {
	batch uint64
	req   *appendReq     // the batch on its way to the log
	err   *schemas.Error // set: a Nack without an append
	start time.Time
}

func newConn(g *Gateway, ws *websocket.Conn) *conn {
	l := g.cfg.Limits
	c := &conn{
		g: g, ws: ws, nc: ws.NetConn(), log: g.log,
		out:        make(chan *frame, l.SendQueue),
		closing:    make(chan struct{}),
		acks:       make(chan pendingAck, l.MaxInflight),
		ackerDone:  make(chan struct{}),
		writerDone: make(chan struct{}),
		frames:     rate.NewLimiter(rate.Limit(l.FramesPerSecond), l.FramesBurst),
		ops:        rate.NewLimiter(rate.Limit(l.OpsPerSecond), l.OpsBurst),
	}
	ws.SetPingHandler(func(data string) error {
		c.sendControl(controlFrame(opPong, []byte(data)))
		return nil
	})
	ws.SetPongHandler(func(string) error {
		c.extendDeadline(true)
		return nil
	})
	ws.SetCloseHandler(func(code int, text string) error {
		// Echo the client's close; the reader ends with the close error.
		c.closeWith(schemas.CloseNormal, nil, true)
		return nil
	})
	return c
}

// run serves the connection until it ends: Hello first, then frames.
func (c *conn) run(cookie string) {
	go c.writeLoop()
	go c.ackLoop()
	defer c.finish()
	if c.ws.Subprotocol() != schemas.Subprotocol {
		c.fail(schemas.CloseUnsupportedVersion, schemas.CodeUnsupportedVersion, "offer the WebSocket subprotocol "+schemas.Subprotocol)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(c.g.cfg.Limits.HelloTimeout))
	opened := false
	for {
		mt, data, err := c.readFrame()
		if errors.Is(err, errFrameTooLarge) {
			c.fail(schemas.CloseTooLarge, schemas.CodeTooLarge, "frame over "+itoa(c.g.cfg.Limits.MaxFrameBytes)+" bytes")
			continue
		}
		if err != nil {
			var ne net.Error
			if !opened && errors.As(err, &ne) && ne.Timeout() && !c.isClosing() {
				c.fail(schemas.CloseMalformed, schemas.CodeBadFrame, "no Hello within "+c.g.cfg.Limits.HelloTimeout.String())
			}
			return
		}
		if c.isClosing() {
			continue // Discard until the client answers the close or closeWait passes.
		}
		if mt != websocket.BinaryMessage {
			c.fail(schemas.CloseMalformed, schemas.CodeBadFrame, "text frame: the protocol is binary")
			continue
		}
		if !opened {
			opened = c.hello(data, cookie)
			c.extendDeadline(true)
			continue
		}
		c.extendDeadline(false)
		c.handle(data)
	}
}

var errFrameTooLarge = errors.New("frame too large")

// readFrame reads one message, at most MaxFrameBytes of it; a longer one is
// errFrameTooLarge (its rest is discarded by the next read).
func (c *conn) readFrame() (int, []byte, error) {
	mt, r, err := c.ws.NextReader()
	if err != nil {
		return 0, nil, err
	}
	max := c.g.cfg.Limits.MaxFrameBytes
	buf := c.rbuf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), max+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > max {
			return mt, nil, errFrameTooLarge
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, nil, err
		}
	}
	if cap(buf) <= 64<<10 {
		c.rbuf = buf
	}
	return mt, buf, nil
}

// extendDeadline pushes the read deadline two ping intervals ahead; unless
// forced, at most once a second.
func (c *conn) extendDeadline(force bool) {
	if c.isClosing() {
		return
	}
	now := time.Now()
	if !force && now.Sub(c.lastDeadl) < time.Second {
		return
	}
	c.lastDeadl = now
	_ = c.nc.SetReadDeadline(now.Add(2*c.g.cfg.Limits.PingInterval + closeWait))
}

// fail closes the connection for a client error: an ErrorFrame with code,
// then the close frame closeCode.
func (c *conn) fail(closeCode int, code schemas.Code, msg string) {
	c.closeWith(closeCode, schemas.Errorf(code, nil, "%s", msg), false)
}

// message returns err's text without its code prefix when it is a
// *schemas.Error, for messages that carry their own code.
func message(err error) string {
	var se *schemas.Error
	if errors.As(err, &se) && se.Msg != "" {
		if se.Err != nil {
			return se.Msg + ": " + se.Err.Error()
		}
		return se.Msg
	}
	return err.Error()
}

// closeWith starts closing, once: the writer sends the ErrorFrame (when err
// is set) and the close frame; graceful waits for the batches in flight to
// be answered first. The reader then waits closeWait for the client's close.
func (c *conn) closeWith(code int, err *schemas.Error, graceful bool) {
	c.mu.Lock()
	if c.closingSt {
		c.mu.Unlock()
		return
	}
	c.closingSt, c.closeCode, c.closeErr, c.graceful = true, code, err, graceful
	close(c.closing)
	c.mu.Unlock()
	if code != schemas.CloseNormal {
		c.g.metrics.closed(code)
		lvl := slog.LevelDebug
		if code != schemas.CloseGoingAway {
			lvl = slog.LevelInfo
		}
		c.log.Log(context.Background(), lvl, "gateway: closing connection", "close_code", code, "err", err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(closeWait))
	if !graceful {
		// Unblock a write stuck on a client that does not read.
		_ = c.nc.SetWriteDeadline(time.Now().Add(closeWait))
	}
}

func (c *conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// finish tears the connection down once the reader has ended.
func (c *conn) finish() {
	c.closeWith(schemas.CloseNormal, nil, true)
	if c.hub != nil {
		c.hub.leave(c)
		c.presenceMu.Lock()
		c.present = false
		c.publishPresence(nil, nil, true)
		c.presenceMu.Unlock()
		c.g.release(c.hub)
		c.g.metrics.connections.Dec()
	}
	c.mu.Lock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.mu.Unlock()
	close(c.acks)
	<-c.ackerDone
	select {
	case <-c.writerDone:
	case <-time.After(c.g.cfg.Limits.WriteTimeout + closeWait):
	}
	_ = c.nc.Close()
}

// send queues f without blocking; a full queue drops the client.
func (c *conn) send(f *frame) {
	if c.catching.Load() {
		c.qmu.Lock()
		if c.catching.Load() {
			if len(c.held) >= c.g.cfg.Limits.SendQueue {
				c.qmu.Unlock()
				c.overflow()
				return
			}
			c.held = append(c.held, f)
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
	}
	select {
	case c.out <- f:
		c.g.metrics.sent.Inc()
	default:
		c.overflow()
	}
}

// sendControl queues a control frame, dropping it when the queue is full.
func (c *conn) sendControl(f *frame) {
	select {
	case c.out <- f:
	default:
	}
}

// sendWait queues f, waiting for room; it gives up when the connection closes.
func (c *conn) sendWait(f *frame) error {
	select {
	case c.out <- f:
		c.g.metrics.sent.Inc()
		return nil
	case <-c.closing:
		return errors.New("connection closing")
	}
}

func (c *conn) overflow() {
	c.fail(schemas.CloseTooSlow, schemas.CodeTooSlow, "send queue of "+itoa(c.g.cfg.Limits.SendQueue)+" frames overflowed")
}

// hold makes live frames wait while catchUp reads the log.
func (c *conn) hold() { c.catching.Store(true) }

// catchUp queues the Welcome (with a snapshot when one is newer than last),
// the log's events in (last, head], then the frames held meanwhile, and
// goes live.
func (c *conn) catchUp(last, head uint64, w schemas.Welcome) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	if src := c.g.cfg.Snapshots; src != nil {
		seq, data, found, err := src.Snapshot(ctx, c.doc)
		if err != nil {
			c.log.Warn("gateway: snapshot source failed; replaying the log", "doc", c.doc, "err", err)
		} else if found && seq > last {
			w.SnapshotSeq, w.Snapshot, last = seq, data, seq
		}
	}
	f, err := messageFrame(schemas.FrameWelcome, &w)
	if err != nil {
		return err
	}
	if err := c.sendWait(f); err != nil {
		return nil
	}
	if last < head {
		var prevGood, skipped uint64 = last, 0
		err := c.g.cfg.Log.Read(ctx, c.doc, last+1, head, func(ev eventlog.Event, evErr error) error {
			if evErr != nil {
				skipped = ev.Seq
				return nil
			}
			prev := ev.PrevSeq
			if prev != 0 && prev == skipped {
				prev = prevGood
			}
			f, err := eventFrame(ev, prev)
			if err != nil {
				skipped = ev.Seq
				return nil
			}
			prevGood = ev.Seq
			return c.sendWait(f)
		})
		if err != nil {
			if c.isClosing() {
				return nil
			}
			return err
		}
	}
	for {
		c.qmu.Lock()
		held := c.held
		c.held = nil
		if len(held) == 0 {
			c.catching.Store(false)
			c.qmu.Unlock()
			return nil
		}
		c.qmu.Unlock()
		for _, f := range held {
			if err := c.sendWait(f); err != nil {
				return nil
			}
		}
	}
}

// writeLoop writes queued frames, coalescing whatever is queued into one
// socket write, pings every PingInterval, and on closing sends the
// ErrorFrame and the close frame.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	lim := c.g.cfg.Limits
	ping := time.NewTicker(lim.PingInterval)
	defer ping.Stop()
	buf := make([]byte, 0, 4096)
	timeout := lim.WriteTimeout
	// The deadline is moved only when less than half the timeout is left:
	// every write still gets at least half of it, and most writes under
	// load set no timer.
	var deadline time.Time
	write := func(b []byte) bool {
		if now := time.Now(); deadline.Sub(now) < timeout/2 {
			deadline = now.Add(timeout)
			_ = c.nc.SetWriteDeadline(deadline)
		}
		if _, err := c.nc.Write(b); err != nil {
			c.closeWith(schemas.CloseInternal, nil, false)
			_ = c.nc.Close()
			return false
		}
		return true
	}
	// collect appends every frame already queued, up to 64 KiB.
	collect := func(b []byte) []byte {
		for len(b) < 64<<10 {
			select {
			case f := <-c.out:
				b = append(b, f.b...)
			default:
				return b
			}
		}
		return b
	}
	for {
		select {
		case f := <-c.out:
			if len(c.out) == 0 {
				// Nothing else queued: the frame is written as it is (its
				// bytes are shared and immutable), without a copy.
				if !write(f.b) {
					return
				}
				continue
			}
			buf = collect(append(buf[:0], f.b...))
			if !write(buf) {
				return
			}
			if cap(buf) > 256<<10 {
				buf = make([]byte, 0, 4096)
			}
		case <-ping.C:
			if !write(controlFrame(opPing, nil).b) {
				return
			}
		case <-c.closing:
			c.mu.Lock()
			code, cerr, graceful := c.closeCode, c.closeErr, c.graceful
			c.mu.Unlock()
			if !graceful {
				timeout = closeWait // A client that does not read gets no longer.
				deadline = time.Time{}
			}
			if graceful {
				// Answer every batch in flight before saying goodbye.
				idle := make(chan struct{})
				go func() {
					c.inflight.Wait()
					close(idle)
				}()
				deadline := time.After(lim.WriteTimeout)
			wait:
				for {
					select {
					case f := <-c.out:
						if !write(collect(append(buf[:0], f.b...))) {
							return
						}
					case <-idle:
						break wait
					case <-deadline:
						break wait
					}
				}
				if b := collect(buf[:0]); len(b) > 0 && !write(b) {
					return
				}
			}
			b := buf[:0]
			if cerr != nil {
				if f, err := messageFrame(schemas.FrameError, &schemas.ErrorFrame{Code: uint32(cerr.Code), Message: truncate(cerr.Error(), 1024)}); err == nil {
					b = append(b, f.b...)
				}
			}
			reason := ""
			if cerr != nil {
				reason = cerr.Code.String()
			}
			b = append(b, closeFrame(code, reason).b...)
			write(b)
			return
		}
	}
}

// ackLoop answers batches in the order they arrived, each when the log has
// acknowledged (or refused) it.
func (c *conn) ackLoop() {
	defer close(c.ackerDone)
	for a := range c.acks {
		var m schemas.Message
		t := schemas.FrameAck
		nerr := a.err
		if nerr == nil {
			res, err := a.req.wait()
			c.g.metrics.appendSeconds.Observe(time.Since(a.start).Seconds())
			if err != nil {
				var se *schemas.Error
				if !errors.As(err, &se) {
					se = schemas.Errorf(schemas.CodeInternal, err, "append")
				}
				nerr = se
			} else {
				c.g.metrics.ops.Add(float64(len(res)))
				ack := &schemas.Ack{Batch: a.batch}
				if len(res) > 0 {
					ack.FirstSeq, ack.LastSeq = res[0].Seq, res[len(res)-1].Seq
				}
				m = ack
			}
		}
		if nerr != nil {
			t = schemas.FrameNack
			m = &schemas.Nack{Batch: a.batch, Code: uint32(nerr.Code), Message: truncate(nerr.Error(), 1024)}
			c.g.metrics.batches.WithLabelValues(nerr.Code.String()).Inc()
		} else {
			c.g.metrics.acks.Inc()
		}
		if f, err := messageFrame(t, m); err == nil {
			c.send(f)
		}
		c.inflight.Done()
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
