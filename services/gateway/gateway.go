package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/palimpsest-editor/palimpsest/schemas"
	"github.com/palimpsest-editor/palimpsest/services/auth"
)

// Gateway serves the WebSocket protocol palimpsest.v1 as an http.Handler.
// It is safe for concurrent use.
type Gateway struct {
	cfg       Config
	log       *slog.Logger
	metrics   *metrics
	up        websocket.Upgrader
	committer *committer

	draining atomic.Bool
	stop     chan struct{} // closed by Drain: ends presenceLoop
	stopOnce sync.Once
	mu       sync.Mutex
	hubs     map[string]*hub
	conns    map[*conn]struct{}
	wg       sync.WaitGroup // connections
}

// New returns a gateway. Its two goroutines, the log committer and the
// presence loop, end with Drain.
func New(cfg Config) (*Gateway, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Limits.RingSize > cfg.Limits.SendQueue/2 {
		cfg.Limits.RingSize = cfg.Limits.SendQueue / 2
	}
	g := &Gateway{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: newMetrics(cfg.Registerer),
		hubs:    map[string]*hub{},
		conns:   map[*conn]struct{}{},
	}
	g.stop = make(chan struct{})
	g.committer = newCommitter(g)
	go g.committer.run()
	go g.presenceLoop()
	g.up = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 512, // The server writes frames itself (wsframe.go).
		Subprotocols:    []string{schemas.Subprotocol},
		// The origin is checked in ServeHTTP, before the upgrade.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return g, nil
}

func (g *Gateway) presenceSubject(doc string) string { return g.cfg.PresenceSubject + "." + doc }

// presenceLoop repeats the presence of this gateway's users a third of
// PresenceTTL apart, and forgets in every hub the users whose gateway has not
// repeated theirs for PresenceTTL (it died without saying they left).
func (g *Gateway) presenceLoop() {
	t := time.NewTicker(g.cfg.PresenceTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		g.mu.Lock()
		conns := make([]*conn, 0, len(g.conns))
		for c := range g.conns {
			conns = append(conns, c)
		}
		hubs := make([]*hub, 0, len(g.hubs))
		for _, h := range g.hubs {
			hubs = append(hubs, h)
		}
		g.mu.Unlock()
		for _, c := range conns {
			c.repeatPresence()
		}
		cutoff := g.cfg.Now().Add(-g.cfg.PresenceTTL)
		for _, h := range hubs {
			h.expirePresence(cutoff)
		}
	}
}

// ServeHTTP upgrades a request to a WebSocket connection and serves it until
// it closes. Before the upgrade it refuses, with an HTTP error and a JSON body
// {"code","error","message"}: a draining server (503), an Origin not allowed
// (403), a token in the URL (400). Everything after the upgrade is answered
// with close codes (schemas.Close*).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.draining.Load() {
		httpError(w, schemas.CodeGoingAway, "the server is shutting down")
		return
	}
	if !auth.OriginAllowed(r, g.cfg.Origins) {
		httpError(w, schemas.CodeForbidden, "origin not allowed")
		return
	}
	cookie, err := g.cfg.Tokens.FromRequest(r)
	switch auth.CodeOf(err) {
	case "", auth.CodeMissingToken:
	case auth.CodeTokenInURL:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"code": int(schemas.CodeUnauthenticated), "error": string(auth.CodeTokenInURL), "message": err.Error()})
		return
	default:
		httpError(w, schemas.CodeUnauthenticated, err.Error())
		return
	}
	ws, err := g.up.Upgrade(w, r, nil)
	if err != nil {
		return // The upgrader has answered.
	}
	c := newConn(g, ws)
	g.mu.Lock()
	if g.draining.Load() {
		g.mu.Unlock()
		c.fail(schemas.CloseGoingAway, schemas.CodeGoingAway, "the server is shutting down")
		go c.writeLoop()
		c.finish()
		return
	}
	g.conns[c] = struct{}{}
	g.wg.Add(1)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.conns, c)
		g.mu.Unlock()
		g.wg.Done()
	}()
	c.run(cookie)
}

func httpError(w http.ResponseWriter, code schemas.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code.HTTPStatus())
	_ = json.NewEncoder(w).Encode(map[string]any{"code": int(code), "error": code.String(), "message": msg})
}

// Connections returns the number of open connections.
func (g *Gateway) Connections() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Drain stops taking connections and ops, lets every append in flight finish
// and be acknowledged, and closes every connection with CloseGoingAway, so
// clients reconnect (to another replica, or to this one after a restart).
// It returns when every connection has closed, or ctx's error when ctx ends
// first. No op acknowledged to a client is lost: acks follow the log's.
func (g *Gateway) Drain(ctx context.Context) error {
	g.mu.Lock()
	g.draining.Store(true)
	conns := make([]*conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.closeWith(schemas.CloseGoingAway, schemas.Errorf(schemas.CodeGoingAway, nil, "the server is shutting down; reconnect"), true)
	}
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.mu.Lock()
	for _, h := range g.hubs {
		g.removeLocked(h)
	}
	g.mu.Unlock()
	g.committer.close()
	g.stopOnce.Do(func() { close(g.stop) })
	return nil
}
