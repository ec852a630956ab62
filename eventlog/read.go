package eventlog

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// LastSeq returns the sequence of document doc's last event, or an
// ErrUnknownDocument error when it has none. It is a direct get, which in a
// cluster may be answered by a replica a moment behind the leader.
func (l *Log) LastSeq(ctx context.Context, doc string) (uint64, error) {
	m, err := l.last(ctx, doc)
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

func (l *Log) last(ctx context.Context, doc string) (*jetstream.RawStreamMsg, error) {
	if err := ValidateDocID(doc); err != nil {
		return nil, err
	}
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	m, err := l.stream.GetLastMsgForSubject(rctx, l.subj.Stored(doc))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, schemas.Errorf(schemas.CodeUnknownDocument, nil, "document %q", doc)
	}
	if err != nil {
		return nil, classify(err, "document %q: last event", doc)
	}
	return m, nil
}

// Read calls fn with document doc's events whose sequences are in
// [from, to], in log order; to == 0 means up to the current last event. It
// returns an ErrUnknownDocument error when the document has no events, fn's
// error if fn fails, and stops without error at the range's end. An event
// that does not decode is passed to fn with its Seq and an ErrBadEvent
// error; fn decides whether to go on.
func (l *Log) Read(ctx context.Context, doc string, from, to uint64, fn func(Event, error) error) error {
	last, err := l.LastSeq(ctx, doc)
	if err != nil {
		return err
	}
	if to == 0 || to > last {
		to = last
	}
	from = max(from, 1)
	if from > to {
		return nil
	}
	return l.scan(ctx, l.subj.Stored(doc), from, nil, to, fn)
}

// ReadSince calls fn with document doc's events stored at or after t, up to
// the last event when ReadSince was called, in log order. Errors are as for
// Read.
func (l *Log) ReadSince(ctx context.Context, doc string, t time.Time, fn func(Event, error) error) error {
	last, err := l.last(ctx, doc)
	if err != nil {
		return err
	}
	if last.Time.Before(t) {
		return nil
	}
	return l.scan(ctx, l.subj.Stored(doc), 0, &t, last.Sequence, fn)
}

// readBatch is how many events one direct get returns at most.
const readBatch = 1000

// errStop ends a direct-get batch early without an error.
var errStop = errors.New("stop")

// scan delivers the events on filter from sequence from (or from time
// since) through stop, in order, in batches of direct gets. It keeps asking
// until it has seen an event at or beyond stop, so a replica that lags only
// delays it; it gives up with ErrUnavailable when ctx ends.
func (l *Log) scan(ctx context.Context, filter string, from uint64, since *time.Time, stop uint64, fn func(Event, error) error) error {
	next := from
	wait := time.Millisecond
	for {
		var ferr error
		done := false
		last, _, err := l.directBatch(ctx, filter, next, since, readBatch, func(seq uint64, subject string, hdr nats.Header, data []byte, stored time.Time) error {
			if seq > stop {
				done = true
				return errStop
			}
			if ferr = fn(l.decode(seq, subject, hdr, data, stored)); ferr != nil {
				return ferr
			}
			if seq >= stop {
				done = true
				return errStop
			}
			return nil
		})
		if ferr != nil {
			return ferr
		}
		if done {
			return nil
		}
		if err != nil && err != errStop {
			return err
		}
		if last != 0 {
			next, since, wait = last+1, nil, time.Millisecond
			continue
		}
		// Nothing new on this replica yet: it is behind the sequence we
		// were told exists.
		select {
		case <-ctx.Done():
			return unavailable(ctx.Err(), "read %s: sequence %d not visible", filter, stop)
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// repair folds document st.id's events after st.m.Seq into its marks, up to
// sequence target (0: the current last event). st.mu is held.
func (l *Log) repair(ctx context.Context, st *docState, target uint64) error {
	if target == 0 {
		last, err := l.LastSeq(ctx, st.id)
		if errors.Is(err, ErrUnknownDocument) {
			return nil
		}
		if err != nil {
			return err
		}
		target = last
	}
	if target <= st.m.Seq {
		return nil
	}
	return l.scan(ctx, l.subj.Stored(st.id), st.m.Seq+1, nil, target, func(ev Event, err error) error {
		if err != nil {
			l.cfg.Logger.Warn("eventlog: undecodable event; not in the marks", "doc", st.id, "seq", ev.Seq, "err", err)
			st.m.Seq = max(st.m.Seq, ev.Seq)
			return nil
		}
		st.m.fold(ev.Seq, ev.Site, ev.Counter, ev.Span)
		return nil
	})
}
