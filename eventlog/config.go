package eventlog

import (
	"fmt"
	"log/slog"
	"time"
)

// Config says how the log lays out and uses its JetStream stream. The zero
// value is usable: every zero field takes the default named on it.
type Config struct {
	// Stream is the JetStream stream's name. Default "PALIMPSEST".
	Stream string
	// SubjectPrefix is the first token of every subject. Default "palimpsest".
	// Writers publish to <prefix>.doc.<docID>; the stream stores the event
	// under <prefix>.p.<partition>.doc.<docID>.
	SubjectPrefix string
	// Partitions is the number of partitions documents are hashed into. It is
	// fixed when the stream is created: Open refuses to change it. Default 16.
	Partitions int
	// Replicas is the stream's and the marks bucket's replication factor:
	// 1 on a single server, 3 in a cluster. Default: 3 when the server Open
	// is connected to is part of a cluster, else 1.
	Replicas int
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id. Ops
	// resent after it are still caught by the per-document marks (see
	// Append). Default 2 minutes.
	DuplicateWindow time.Duration
	// MaxEventSize bounds one stored event (headers and payload). Default 256 KiB.
	MaxEventSize int32
	// MaxBatch bounds the ops in one Append and in one coalesced atomic
	// batch; JetStream allows at most 1000. Default 256.
	MaxBatch int
	// MarksBucket is the JetStream KV bucket that holds each document's
	// marks. Default "palimpsest_marks".
	MarksBucket string
	// MarksEvery is how many appended events a document may get before its
	// marks are written back to the bucket; an idle document's marks are
	// written after MarksIdle. Default 64 and 1 second.
	MarksEvery int
	MarksIdle  time.Duration
	// RequestTimeout bounds one request to the server when the caller's
	// context has no earlier deadline. Default 5 seconds.
	RequestTimeout time.Duration
	// Logger receives the log's warnings. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock that stamps Event.Time. Default time.Now.
	Now func() time.Time
}

// MaxAtomicBatch is JetStream's limit on messages in one atomic batch.
const MaxAtomicBatch = 1000

func (c Config) withDefaults() (Config, error) {
	if c.Stream == "" {
		c.Stream = "PALIMPSEST"
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "palimpsest"
	}
	if c.Partitions == 0 {
		c.Partitions = 16
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.MaxEventSize == 0 {
		c.MaxEventSize = 256 << 10
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 256
	}
	if c.MarksBucket == "" {
		c.MarksBucket = "palimpsest_marks"
	}
	if c.MarksEvery == 0 {
		c.MarksEvery = 64
	}
	if c.MarksIdle == 0 {
		c.MarksIdle = time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.Partitions < 1 || c.Partitions > 1024:
		return c, fmt.Errorf("eventlog: Partitions %d out of 1..1024", c.Partitions)
	case c.Replicas < 1 || c.Replicas > 5:
		return c, fmt.Errorf("eventlog: Replicas %d out of 1..5", c.Replicas)
	case c.MaxBatch < 1 || c.MaxBatch > MaxAtomicBatch:
		return c, fmt.Errorf("eventlog: MaxBatch %d out of 1..%d", c.MaxBatch, MaxAtomicBatch)
	case c.DuplicateWindow < 0 || c.MaxEventSize < 1024 || c.MarksEvery < 1 || c.MarksIdle < 0 || c.RequestTimeout < 0:
		return c, fmt.Errorf("eventlog: negative duration, MaxEventSize under 1 KiB or MarksEvery under 1")
	case !validToken(c.SubjectPrefix) || !validToken(c.Stream) || !validToken(c.MarksBucket):
		return c, fmt.Errorf("eventlog: Stream %q, SubjectPrefix %q and MarksBucket %q must be [A-Za-z0-9_-]+", c.Stream, c.SubjectPrefix, c.MarksBucket)
	}
	return c, nil
}
