package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// Log is a document event log on one JetStream stream. It is safe for
// concurrent use. Several Log values, in one process or many, may write the
// same documents: correctness rests on the server's expected-sequence check,
// not on in-process state.
type Log struct {
	cfg    Config
	subj   Subjects
	nc     *nats.Conn
	ownNC  bool
	js     jetstream.JetStream
	stream jetstream.Stream
	kv     jetstream.KeyValue

	mu     sync.Mutex
	docs   map[string]*docState
	closed bool
	wg     sync.WaitGroup
	stop   chan struct{}
}

// Event is one stored event with its place in the log.
type Event struct {
	// Seq is the event's stream sequence: the version of the document it creates.
	Seq uint64
	// PrevSeq is the sequence of the document's previous event, 0 for its
	// first. A reader that last saw sequence s and receives an event with
	// PrevSeq != s has missed events and can fill the gap with Read.
	PrevSeq uint64
	// Partition is the document's partition.
	Partition int
	// Stored is when the server stored the event.
	Stored time.Time
	// Origin is the op's Op.Origin: empty for an op made in this system.
	Origin string
	// Span is the op's Op.Span: how many counters it spent; 0 when it was
	// appended without one.
	Span uint32
	schemas.Event
}

// Message headers the log writes.
const (
	hdrPrev      = "Palimpsest-Prev"   // document's previous sequence, or "^" for "the stream sequence just before"
	hdrOrigin    = "Palimpsest-Origin" // Op.Origin, when set
	hdrSpan      = "Palimpsest-Span"   // Op.Span, when set
	prevInBatch  = "^"
	hdrMsgID     = "Nats-Msg-Id"
	hdrExpSubSeq = "Nats-Expected-Last-Subject-Sequence"
	hdrBatchID   = "Nats-Batch-Id"
	hdrBatchSeq  = "Nats-Batch-Sequence"
	hdrCommit    = "Nats-Batch-Commit"
)

// Connect dials the NATS server or cluster at url (comma-separated URLs for
// several seeds) and opens the log on it. The connection reconnects forever;
// Close closes it.
func Connect(ctx context.Context, url string, cfg Config, opts ...nats.Option) (*Log, error) {
	nc, err := nats.Connect(url, append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		return nil, unavailable(err, "connect to %s", url)
	}
	l, err := Open(ctx, nc, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	l.ownNC = true
	return l, nil
}

// Open creates or migrates the stream and the marks bucket and returns the
// log. It is idempotent: any number of processes may Open the same layout at
// once. It waits (until ctx is done) for JetStream to become available, as
// it is not yet while a cluster elects its leaders. It refuses to change the
// partition count of an existing stream. The caller keeps ownership of nc.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Log, error) {
	if cfg.Replicas == 0 && nc.ConnectedClusterName() != "" {
		cfg.Replicas = 3 // ADR 0002: R3 in a cluster
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	l := &Log{
		cfg:  cfg,
		subj: Subjects{Prefix: cfg.SubjectPrefix, Partitions: cfg.Partitions},
		nc:   nc,
		js:   js,
		docs: map[string]*docState{},
		stop: make(chan struct{}),
	}
	if err := retryTransient(ctx, func() error { return l.ensureStream(ctx) }); err != nil {
		return nil, err
	}
	if err := retryTransient(ctx, func() error { return l.ensureMarks(ctx) }); err != nil {
		return nil, err
	}
	l.wg.Add(1)
	go l.flushLoop()
	return l, nil
}

// retryTransient calls f until it returns nil, a non-transient error, or ctx
// is done.
func retryTransient(ctx context.Context, f func() error) error {
	wait := 20 * time.Millisecond
	for {
		err := f()
		if err == nil || !isTransient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return unavailable(err, "JetStream not available before %v", ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}

func (l *Log) streamConfig() jetstream.StreamConfig {
	src, dst := l.subj.transform()
	return jetstream.StreamConfig{
		Name:               l.cfg.Stream,
		Description:        "Palimpsest document events; one subject per document, partitioned.",
		Subjects:           []string{src},
		SubjectTransform:   &jetstream.SubjectTransformConfig{Source: src, Destination: dst},
		Storage:            jetstream.FileStorage,
		Retention:          jetstream.LimitsPolicy,
		Replicas:           l.cfg.Replicas,
		Duplicates:         l.cfg.DuplicateWindow,
		MaxMsgSize:         l.cfg.MaxEventSize,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		DenyDelete:         true,
		DenyPurge:          true,
	}
}

func (l *Log) ensureStream(ctx context.Context) error {
	want := l.streamConfig()
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	s, err := l.js.Stream(rctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = l.js.CreateStream(rctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = l.js.Stream(rctx, want.Name) // Lost a race with another Open.
		}
	}
	if err != nil {
		return classify(err, "stream %s", want.Name)
	}
	have := s.CachedInfo().Config
	if have.SubjectTransform == nil || have.SubjectTransform.Destination != want.SubjectTransform.Destination ||
		len(have.Subjects) != 1 || have.Subjects[0] != want.Subjects[0] {
		return fmt.Errorf("eventlog: stream %s has subjects %v and transform %+v; this configuration needs %v and %+v (the partition count of a stream never changes)",
			want.Name, have.Subjects, have.SubjectTransform, want.Subjects, want.SubjectTransform)
	}
	if have.Replicas != want.Replicas || have.Duplicates != want.Duplicates || have.MaxMsgSize != want.MaxMsgSize ||
		!have.AllowDirect || !have.AllowAtomicPublish || !have.DenyDelete || !have.DenyPurge {
		upd := have
		upd.Replicas, upd.Duplicates, upd.MaxMsgSize = want.Replicas, want.Duplicates, want.MaxMsgSize
		upd.AllowDirect, upd.AllowAtomicPublish, upd.DenyDelete, upd.DenyPurge = true, true, true, true
		if s, err = l.js.UpdateStream(rctx, upd); err != nil {
			return classify(err, "migrate stream %s", want.Name)
		}
	}
	l.stream = s
	return nil
}

func (l *Log) ensureMarks(ctx context.Context) error {
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	kv, err := l.js.CreateOrUpdateKeyValue(rctx, jetstream.KeyValueConfig{
		Bucket:      l.cfg.MarksBucket,
		Description: "Palimpsest per-document dedup marks; a cache of the event log, rebuilt from it.",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    l.cfg.Replicas,
	})
	if err != nil {
		return classify(err, "marks bucket %s", l.cfg.MarksBucket)
	}
	l.kv = kv
	return nil
}

// StreamInfo returns the stream's current state and cluster placement.
func (l *Log) StreamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	info, err := l.stream.Info(rctx)
	if err != nil {
		return nil, classify(err, "stream %s info", l.cfg.Stream)
	}
	return info, nil
}

// Config returns the configuration in use, defaults filled in.
func (l *Log) Config() Config { return l.cfg }

// Subjects returns the log's subject layout.
func (l *Log) Subjects() Subjects { return l.subj }

// PartitionOf returns the partition of document id in this log.
func (l *Log) PartitionOf(id string) int { return PartitionOf(id, l.cfg.Partitions) }

// Close waits for appends in progress, writes back every document's marks,
// and closes the connection if Connect made it. Appends after Close fail.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	docs := make([]*docState, 0, len(l.docs))
	for _, d := range l.docs {
		docs = append(docs, d)
	}
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.RequestTimeout)
	defer cancel()
	for _, d := range docs {
		d.mu.Lock()
		d.persistLocked(ctx, l)
		d.mu.Unlock()
	}
	if l.ownNC {
		l.nc.Close()
	}
	return nil
}

// reqCtx bounds ctx by the configured request timeout.
func (l *Log) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= l.cfg.RequestTimeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, l.cfg.RequestTimeout)
}

// decode turns a stored message into an Event. A message that is not a valid
// event yields a schemas.ErrBadEvent error and an Event with Seq set.
func (l *Log) decode(seq uint64, subject string, hdr nats.Header, data []byte, stored time.Time) (Event, error) {
	ev := Event{Seq: seq, Stored: stored, Partition: -1, Origin: hdr.Get(hdrOrigin)}
	if sp := hdr.Get(hdrSpan); sp != "" {
		if n, err := strconv.ParseUint(sp, 10, 32); err == nil {
			ev.Span = uint32(n)
		}
	}
	// <prefix>.p.<partition>.doc.<id>
	if rest, ok := strings.CutPrefix(subject, l.subj.Prefix+".p."); ok {
		if p, _, ok := strings.Cut(rest, "."); ok {
			if n, err := strconv.Atoi(p); err == nil {
				ev.Partition = n
			}
		}
	}
	switch prev := hdr.Get(hdrPrev); {
	case prev == prevInBatch && seq > 1:
		ev.PrevSeq = seq - 1
	default:
		n, err := strconv.ParseUint(prev, 10, 64)
		if err != nil || n >= seq {
			return ev, schemas.Errorf(schemas.CodeBadEvent, nil, "event at sequence %d: header %s=%q", seq, hdrPrev, prev)
		}
		ev.PrevSeq = n
	}
	if err := ev.Event.UnmarshalBinary(data); err != nil {
		return ev, schemas.Errorf(schemas.CodeBadEvent, err, "event at sequence %d", seq)
	}
	return ev, nil
}
