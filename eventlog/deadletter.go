package eventlog

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is an event a consumer could not process (it does not decode, or
// its document refused it), set aside with the reason so its partition can go
// on. It is stored in the dead-letter stream <Stream>_DEAD under subject
// <prefix>.dead.<consumer>: the payload is the event's stored bytes, as
// written, and the headers say where it came from and why.
type DeadLetter struct {
	// Consumer is who gave up on it, e.g. "projector-state".
	Consumer string
	// Seq is the event's stream sequence; Doc its document ("" if unknown).
	Seq       uint64
	Doc       string
	Partition int
	// Reason says why, for humans; Code is a stable code when there is one.
	Reason string
	Code   string
	// Data is the event's stored payload.
	Data []byte
	// Time is when it was set aside (filled in by the server's stream).
	Time time.Time
}

// Dead-letter headers.
const (
	HdrDeadSeq       = "Palimpsest-Dead-Seq"
	HdrDeadDoc       = "Palimpsest-Dead-Doc"
	HdrDeadPartition = "Palimpsest-Dead-Partition"
	HdrDeadReason    = "Palimpsest-Dead-Reason"
	HdrDeadCode      = "Palimpsest-Dead-Code"
	HdrDeadConsumer  = "Palimpsest-Dead-Consumer"
)

func (l *Log) deadStream() string  { return l.cfg.Stream + "_DEAD" }
func (l *Log) deadSubject() string { return l.cfg.SubjectPrefix + ".dead.*" }

// DeadLetterSubject is the subject consumer's dead letters are stored under.
func (l *Log) DeadLetterSubject(consumer string) string {
	return l.cfg.SubjectPrefix + ".dead." + consumer
}

// deadReady holds the logs whose dead-letter stream exists.
var deadReady sync.Map // *Log -> struct{}

func (l *Log) ensureDeadOnce(ctx context.Context) error {
	if _, ok := deadReady.Load(l); ok {
		return nil
	}
	if err := l.ensureDeadStream(ctx); err != nil {
		return classify(err, "dead-letter stream %s", l.deadStream())
	}
	deadReady.Store(l, struct{}{})
	return nil
}

func (l *Log) ensureDeadStream(ctx context.Context) error {
	return retryTransient(ctx, func() error {
		rctx, cancel := l.reqCtx(ctx)
		defer cancel()
		_, err := l.js.CreateOrUpdateStream(rctx, jetstream.StreamConfig{
			Name:        l.deadStream(),
			Description: "Palimpsest dead letters: events a consumer set aside, with the reason.",
			Subjects:    []string{l.deadSubject()},
			Storage:     jetstream.FileStorage,
			Replicas:    l.cfg.Replicas,
			Duplicates:  l.cfg.DuplicateWindow,
		})
		return err
	})
}

// PublishDeadLetter stores d in the dead-letter stream and returns after the
// server acknowledged it. It is idempotent within the duplicate window (the
// message id is the consumer and the sequence), so a consumer that crashes
// and processes the event again does not set it aside twice.
func (l *Log) PublishDeadLetter(ctx context.Context, d DeadLetter) error {
	if !validToken(d.Consumer) {
		return errors.New("eventlog: dead letter consumer must be [A-Za-z0-9_-]+")
	}
	if err := l.ensureDeadOnce(ctx); err != nil {
		return err
	}
	m := nats.NewMsg(l.DeadLetterSubject(d.Consumer))
	m.Data = d.Data
	m.Header.Set(HdrDeadSeq, strconv.FormatUint(d.Seq, 10))
	m.Header.Set(HdrDeadDoc, d.Doc)
	m.Header.Set(HdrDeadPartition, strconv.Itoa(d.Partition))
	m.Header.Set(HdrDeadReason, d.Reason)
	m.Header.Set(HdrDeadCode, d.Code)
	m.Header.Set(HdrDeadConsumer, d.Consumer)
	m.Header.Set(hdrMsgID, d.Consumer+":"+strconv.FormatUint(d.Seq, 10))
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	if _, err := l.js.PublishMsg(rctx, m); err != nil {
		return classify(err, "dead letter of sequence %d", d.Seq)
	}
	return nil
}

// DeadLetters returns the dead letters of consumer, oldest first.
func (l *Log) DeadLetters(ctx context.Context, consumer string) ([]DeadLetter, error) {
	if err := l.ensureDeadOnce(ctx); err != nil {
		return nil, err
	}
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	s, err := l.js.Stream(rctx, l.deadStream())
	if err != nil {
		return nil, classify(err, "dead-letter stream")
	}
	var out []DeadLetter
	var seq uint64 = 1
	for {
		m, err := s.GetMsg(rctx, seq, jetstream.WithGetMsgSubject(l.DeadLetterSubject(consumer)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, classify(err, "dead letters of %s", consumer)
		}
		d := DeadLetter{Consumer: consumer, Data: m.Data, Time: m.Time,
			Doc: m.Header.Get(HdrDeadDoc), Reason: m.Header.Get(HdrDeadReason), Code: m.Header.Get(HdrDeadCode)}
		d.Seq, _ = strconv.ParseUint(m.Header.Get(HdrDeadSeq), 10, 64)
		d.Partition, _ = strconv.Atoi(m.Header.Get(HdrDeadPartition))
		out = append(out, d)
		seq = m.Sequence + 1
	}
}
