package read

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// Time travel: the state of a document at version v is the fold of its
// events up to v, exactly as the projector folds them (applyEvent). It is
// built from the closest base at or below v, then the log's events after the
// base up to v:
//
//	base := a decoded state in memory (stateCache, taken exclusively)
//	     or the nearest snapshot (snapCache, then SnapshotStore.Nearest)
//	     or the state store's current state (when it is at or below v)
//	     or the empty document
//	Read(doc, base+1, v) → apply each event      // the last one must be v itself
//	use the state, then put it back in the cache at v
//
// A version of a document is the sequence of one of its events; anything
// else is ErrUnknownVersion.

// replica returns an empty document as the projector keeps it: it only
// applies remote ops, so its site and randomness never show.
func replica() *crdt.Doc { return crdt.New(0, rand.NewPCG(0, 0)) }

func loadReplica(b []byte) (*crdt.Doc, error) {
	if len(b) == 0 {
		return replica(), nil
	}
	return crdt.LoadSnapshot(b, 0, rand.NewPCG(0, 0))
}

// applyEvent folds ev into d as the projector does and reports whether it
// applied: an event that does not decode, is not an op, is an op of another
// site or counter than its envelope, or that the CRDT refuses is skipped
// (the projector sets it aside as a dead letter and goes on).
func applyEvent(d *crdt.Doc, ev *eventlog.Event, evErr error) (crdt.Op, bool) {
	if evErr != nil || ev.Type != schemas.EventOp {
		return crdt.Op{}, false
	}
	op, err := crdt.DecodeOp(ev.Payload)
	if err != nil || uint32(op.Site) != ev.Site || op.Counter != ev.Counter {
		return crdt.Op{}, false
	}
	if _, err := d.Apply(op); err != nil {
		return crdt.Op{}, false
	}
	return op, true
}

// unknownVersion is the error of a sequence that is not a version of doc.
func unknownVersion(doc string, v, last uint64) error {
	if v > last {
		return schemas.Errorf(schemas.CodeUnknownVersion, nil,
			"document %q has no version %d: its latest version is %d", doc, v, last)
	}
	return schemas.Errorf(schemas.CodeUnknownVersion, nil,
		"sequence %d is not a version of document %q (a version is the sequence of one of the document's own events)", v, doc)
}

// checkout returns doc's state at version v, owned by the caller, who must
// give it back with checkin (or drop it). v == 0 is the empty document
// before its first event.
func (s *Service) checkout(ctx context.Context, doc string, v uint64) (*state, error) {
	start := time.Now()
	st, base, err := s.base(ctx, doc, v)
	if err != nil {
		return nil, err
	}
	if st.version == v {
		if v > 0 && st.updated.IsZero() {
			// A snapshot at exactly v: the event's author and time.
			if err := s.eventMeta(ctx, st); err != nil {
				return nil, err
			}
		}
		s.metrics.travel(base, 0, time.Since(start))
		return st, nil
	}
	n := 0
	var lastSeen uint64
	err = s.cfg.Log.Read(ctx, doc, st.version+1, v, func(ev eventlog.Event, evErr error) error {
		applyEvent(st.d, &ev, evErr)
		lastSeen = ev.Seq
		st.version, st.updated, st.author = ev.Seq, ev.Stored, ev.Author
		n++
		return nil
	})
	if err != nil {
		if errors.Is(err, eventlog.ErrUnknownDocument) {
			return nil, notFound(doc)
		}
		if lastSeen > 0 {
			s.states.put(st) // Correct at lastSeen: keep it.
		}
		return nil, err
	}
	if st.version != v {
		s.states.put(st)
		last, lerr := s.cfg.Log.LastSeq(ctx, doc)
		if lerr != nil {
			last = st.version
		}
		return nil, unknownVersion(doc, v, last)
	}
	s.metrics.travel(base, n, time.Since(start))
	return st, nil
}

// checkin gives a state back to the cache.
func (s *Service) checkin(st *state) { s.states.put(st) }

// eventMeta fills st's author and time from its version's event, checking
// that the event is doc's.
func (s *Service) eventMeta(ctx context.Context, st *state) error {
	if m, ok := s.meta.get(st.doc, st.version); ok {
		st.updated, st.author = m.updated, m.author
		return nil
	}
	found := false
	err := s.cfg.Log.Read(ctx, st.doc, st.version, st.version, func(ev eventlog.Event, _ error) error {
		found = ev.Seq == st.version
		st.updated, st.author = ev.Stored, ev.Author
		return nil
	})
	if errors.Is(err, eventlog.ErrUnknownDocument) {
		return notFound(st.doc)
	}
	if err != nil {
		return err
	}
	if !found {
		return unknownVersion(st.doc, st.version, st.version)
	}
	s.meta.put(st.doc, st.version, meta{st.updated, st.author})
	return nil
}

// base returns the closest starting state at or below v and names it for
// the metrics: "cursor", "snapshot", "state" or "empty".
func (s *Service) base(ctx context.Context, doc string, v uint64) (*state, string, error) {
	cur := s.states.take(doc, v)
	if cur != nil && v-cur.version <= s.cfg.NearEvents {
		return cur, "cursor", nil
	}
	giveBack := func() { s.states.put(cur) }
	best := cur
	kind := "cursor"
	// A snapshot, if one is closer than the cursor.
	snapSeq, data, err := s.nearest(ctx, doc, v)
	if err != nil {
		giveBack()
		return nil, "", err
	}
	if data != nil && (best == nil || snapSeq > best.version) {
		d, err := loadReplica(data)
		if err != nil {
			s.log.Warn("read: snapshot does not load; replaying without it", "doc", doc, "version", snapSeq, "err", err)
		} else {
			giveBack()
			best, kind = &state{doc: doc, version: snapSeq, d: d}, "snapshot"
		}
	}
	// The current state, when the asked version is beyond every snapshot.
	if from := baseVersion(best); v-from > s.cfg.StateFallback {
		if st, ok := s.currentState(ctx, doc, v); ok && st.Version > from {
			d, err := loadReplica(st.State)
			if err == nil {
				if best != nil && kind == "cursor" {
					s.states.put(best)
				}
				best, kind = &state{doc: doc, version: st.Version, d: d, updated: st.Updated, author: st.Author}, "state"
			}
		}
	}
	if best == nil {
		return &state{doc: doc, d: replica()}, "empty", nil
	}
	return best, kind, nil
}

func baseVersion(st *state) uint64 {
	if st == nil {
		return 0
	}
	return st.version
}

// nearest is SnapshotStore.Nearest through the snapshot cache: the highest
// snapshot at or below v (data nil when there is none, or no store).
func (s *Service) nearest(ctx context.Context, doc string, v uint64) (uint64, []byte, error) {
	if s.cfg.Snapshots == nil {
		return 0, nil, nil
	}
	if seq, data, ok := s.snaps.lookup(doc, v); ok && v-seq <= s.cfg.NearEvents {
		return seq, data, nil
	}
	seq, data, err := s.cfg.Snapshots.Nearest(ctx, doc, v)
	if errors.Is(err, projections.ErrNoSnapshot) {
		s.snaps.record(doc, v, 0, nil)
		return 0, nil, nil
	}
	if err != nil {
		// Snapshots only make time travel faster: go on without.
		s.metrics.errors.WithLabelValues("snapshot").Inc()
		s.log.Warn("read: snapshot store failed; replaying from the log", "doc", doc, "at", v, "err", err)
		return 0, nil, nil
	}
	s.snaps.record(doc, v, seq, data)
	return seq, data, nil
}

// currentState loads doc's state from the state store when it is at or
// below v; a failure only means time travel goes on without it.
func (s *Service) currentState(ctx context.Context, doc string, v uint64) (projections.DocState, bool) {
	store, err := s.cfg.State.Live(ctx)
	if err != nil {
		return projections.DocState{}, false
	}
	m, err := store.Load(ctx, []string{doc})
	if err != nil {
		return projections.DocState{}, false
	}
	st, ok := m[doc]
	if !ok || st.Version > v || len(st.State) == 0 {
		return projections.DocState{}, false
	}
	return st, true
}

// versionAt returns doc's version at instant t: its last event stored at or
// before t (by the server's clock, Event.Stored).
func (s *Service) versionAt(ctx context.Context, doc string, t time.Time) (uint64, error) {
	var v uint64
	var after *eventlog.Event
	errDone := errors.New("done")
	err := s.cfg.Log.ReadSince(ctx, doc, t, func(ev eventlog.Event, evErr error) error {
		if ev.Stored.After(t) {
			if evErr == nil {
				after = &ev
			}
			return errDone
		}
		v = ev.Seq // Stored exactly at t.
		return nil
	})
	switch {
	case errors.Is(err, eventlog.ErrUnknownDocument):
		return 0, notFound(doc)
	case err != nil && err != errDone:
		return 0, err
	case v > 0:
		return v, nil
	case after != nil && after.PrevSeq > 0:
		return after.PrevSeq, nil
	case after != nil:
		return 0, schemas.Errorf(schemas.CodeUnknownVersion, nil,
			"document %q had no version at %s: its first event was stored at %s", doc, t.Format(time.RFC3339Nano), after.Stored.Format(time.RFC3339Nano))
	case err == errDone:
		// The first event after t did not decode: find its predecessor the slow way.
		return s.versionAtScan(ctx, doc, t)
	}
	// Nothing stored after t: the latest version.
	last, err := s.cfg.Log.LastSeq(ctx, doc)
	if errors.Is(err, eventlog.ErrUnknownDocument) {
		return 0, notFound(doc)
	}
	return last, err
}

// versionAtScan reads doc from its start up to the first event after t.
func (s *Service) versionAtScan(ctx context.Context, doc string, t time.Time) (uint64, error) {
	var v uint64
	errDone := errors.New("done")
	err := s.cfg.Log.Read(ctx, doc, 1, 0, func(ev eventlog.Event, _ error) error {
		if ev.Stored.After(t) {
			return errDone
		}
		v = ev.Seq
		return nil
	})
	if err != nil && err != errDone {
		return 0, err
	}
	if v == 0 {
		return 0, schemas.Errorf(schemas.CodeUnknownVersion, nil, "document %q had no version at %s", doc, t.Format(time.RFC3339Nano))
	}
	return v, nil
}

// At returns doc as it was right after version v.
func (s *Service) At(ctx context.Context, doc string, v uint64) (Document, error) {
	if err := eventlog.ValidateDocID(doc); err != nil {
		return Document{}, err
	}
	if v == 0 {
		return Document{}, schemas.Errorf(schemas.CodeUnknownVersion, nil, "version 0 is before document %q's first event", doc)
	}
	st, err := s.checkout(ctx, doc, v)
	if err != nil {
		return Document{}, err
	}
	defer s.checkin(st)
	s.meta.put(doc, st.version, meta{st.updated, st.author})
	return Document{ID: doc, Version: st.version, Updated: apiTime(st.updated), Author: st.author, Length: st.d.Len(), Text: st.d.Text(), Source: SourceLog}, nil
}

// AtTime returns doc as it was at instant t.
func (s *Service) AtTime(ctx context.Context, doc string, t time.Time) (Document, error) {
	if err := eventlog.ValidateDocID(doc); err != nil {
		return Document{}, err
	}
	v, err := s.versionAt(ctx, doc, t)
	if err != nil {
		return Document{}, err
	}
	return s.At(ctx, doc, v)
}

// String is for logs.
func (st *state) String() string { return fmt.Sprintf("%s@%d", st.doc, st.version) }
