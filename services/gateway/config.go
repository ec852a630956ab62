package gateway

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/services/auth"
)

// SnapshotSource gives the gateway a document's latest snapshot, so a client
// far behind gets the state plus the tail instead of the whole history.
// Projections provide one; without it the gateway replays the log.
type SnapshotSource interface {
	// Snapshot returns document doc's latest snapshot, as written by
	// crdt.Doc.AppendSnapshot, and the sequence of the last event it
	// includes (an event of doc). found is false when there is none.
	Snapshot(ctx context.Context, doc string) (seq uint64, data []byte, found bool, err error)
}

// Config wires a Gateway. Log, NATS, Sites and Verifier are required; every
// other zero field takes the default named on it.
type Config struct {
	Log      *eventlog.Log
	NATS     *nats.Conn // presence fan-out (core NATS, never the log)
	Sites    *eventlog.SiteRegistry
	Verifier *auth.Verifier
	// Tokens reads the token cookie of the upgrade request.
	Tokens auth.TokenSource
	// Origins is the Origin allow-list (see auth.OriginAllowed); empty means
	// same origin only, "*" any.
	Origins []string
	// Snapshots, when set, serves clients behind the recent-events ring whose
	// last sequence is older than the latest snapshot.
	Snapshots SnapshotSource
	// PresenceSubject is the prefix of the core NATS subjects presence travels
	// on: <prefix>.<docID>. Default "palimpsest.presence".
	PresenceSubject string
	// PresenceTTL is how long a user's presence lasts without news from its
	// gateway. Every gateway repeats its users' presence a third of it apart,
	// so a user whose gateway died without saying "gone" disappears from the
	// others' after at most this long. Default 30 s.
	PresenceTTL time.Duration
	Limits      Limits
	// BatchThreshold: when fewer ops than this wait for the log, they are
	// appended batch by batch, else every document's in one atomic batch (see
	// committer). Default 8; 1 always batches.
	BatchThreshold int
	// Registerer receives the gateway's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	Logger     *slog.Logger // default slog.Default()
	Now        func() time.Time
}

// Limits bound what one connection may send and hold. A client over a limit
// gets the error named on it; nothing else is affected.
type Limits struct {
	// MaxFrameBytes bounds one WebSocket message (CloseTooLarge). Default 1 MiB.
	MaxFrameBytes int
	// MaxOpsPerBatch bounds the ops of one Submit or Hello (Nack too_large).
	// Default 256. A batch larger than the log's MaxBatch is appended in
	// several log batches and acknowledged when all are.
	MaxOpsPerBatch int
	// MaxOpBytes bounds one encoded op (Nack too_large). Default 64 KiB.
	MaxOpBytes int
	// MaxDocumentChars bounds a document's length in code points, as counted
	// by the gateway from the ops in the log (Nack document_too_large).
	// Default 4 Mi.
	MaxDocumentChars int64
	// OpsPerSecond and OpsBurst are the connection's op rate; FramesPerSecond
	// and FramesBurst its frame rate (CloseRateLimited). Defaults 500 and
	// 2000 ops, 100 and 400 frames.
	OpsPerSecond    float64
	OpsBurst        int
	FramesPerSecond float64
	FramesBurst     int
	// SendQueue is how many frames may wait for a slow client before it is
	// dropped (CloseTooSlow). Default 4096: more than a client's own batches
	// in flight echo at once.
	SendQueue int
	// MaxInflight is how many batches of a connection may wait for the log;
	// the reader stops reading while that many are pending. Default 32.
	MaxInflight int
	// HelloTimeout bounds the wait for the first frame. Default 10 s.
	HelloTimeout time.Duration
	// PingInterval is how often the server pings; a client silent for two
	// intervals is dropped. Default 20 s.
	PingInterval time.Duration
	// WriteTimeout bounds one socket write. Default 10 s.
	WriteTimeout time.Duration
	// RingSize is how many recent events a document keeps in memory for
	// clients that reconnect just behind. Default 1024.
	RingSize int
}

func (c Config) withDefaults() (Config, error) {
	if c.Log == nil || c.NATS == nil || c.Sites == nil || c.Verifier == nil {
		return c, errors.New("gateway: Config.Log, NATS, Sites and Verifier are required")
	}
	if c.PresenceSubject == "" {
		c.PresenceSubject = "palimpsest.presence"
	}
	if c.PresenceTTL <= 0 {
		c.PresenceTTL = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BatchThreshold <= 0 {
		c.BatchThreshold = 8
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	l := &c.Limits
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&l.MaxFrameBytes, 1<<20)
	def(&l.MaxOpsPerBatch, 256)
	def(&l.MaxOpBytes, 64<<10)
	def(&l.OpsBurst, 2000)
	def(&l.FramesBurst, 400)
	def(&l.SendQueue, 4096)
	def(&l.MaxInflight, 32)
	def(&l.RingSize, 1024)
	if l.MaxDocumentChars <= 0 {
		l.MaxDocumentChars = 4 << 20
	}
	if l.OpsPerSecond <= 0 {
		l.OpsPerSecond = 500
	}
	if l.FramesPerSecond <= 0 {
		l.FramesPerSecond = 100
	}
	if l.HelloTimeout <= 0 {
		l.HelloTimeout = 10 * time.Second
	}
	if l.PingInterval <= 0 {
		l.PingInterval = 20 * time.Second
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = 10 * time.Second
	}
	return c, nil
}
