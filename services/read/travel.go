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
func applyEvent(d *crdt.Doc, ev *eventlog.Event, evErr error) (crdt.Op, []crdt.Change, bool) {
	if evErr != nil || ev.Type != schemas.EventOp {
		return crdt.Op{}, nil, false
	}
	op, err := crdt.DecodeOp(ev.Payload)
	if err != nil || uint32(op.Site) != ev.Site || op.Counter != ev.Counter {
		return crdt.Op{}, nil, false
	}
	cs, err := d.Apply(op)
	if err != nil {
		return crdt.Op{}, nil, false
	}
	return op, cs, true
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

// Costs of the ways to a state, in nanoseconds, for choosing a base:
// measured on automerge-paper (decoding a snapshot costs about 200-350 ns a
// byte, applying an op about 0.6-1 µs; a log read costs a round trip and
// some microseconds an event on top).
const (
	decodeNsPerByte = 300
	applyNs         = 1000
	logNsPerEvent   = 10_000
	logReadNs       = 2_000_000
)

// replayCost estimates replaying doc's events in (from, v], counting
// sequences as events (an upper bound: other documents' events share the
// sequence).
func (s *Service) replayCost(doc string, from, v uint64) int64 {
	_, hi := s.evcache.after(doc, from)
	hi = min(hi, v)
	cost := int64(v-from) * applyNs
	if hi < v {
		cost += logReadNs + int64(v-hi)*logNsPerEvent
	}
	return cost
}

// basePlan is where a state at some version starts: a decoded state taken
// from the cache (st), or bytes to decode (a snapshot or the state store's
// state), or the empty document.
type basePlan struct {
	kind    string // cursor, snapshot, state or empty
	st      *state
	version uint64
	data    []byte
	updated time.Time
	author  string
}

// checkout returns doc's state at version v, owned by the caller, who must
// give it back with checkin (or drop it). v == 0 is the empty document
// before its first event.
func (s *Service) checkout(ctx context.Context, doc string, v uint64) (*state, error) {
	st, found, err := s.advance(ctx, doc, v, v, nil, nil)
	if err != nil {
		return nil, err
	}
	if !found {
		s.states.put(st) // Correct at its version: keep it.
		return nil, s.notAVersion(ctx, doc, v)
	}
	return st, nil
}

// notAVersion is the error of a v that is not a version of doc.
func (s *Service) notAVersion(ctx context.Context, doc string, v uint64) error {
	last, err := s.cfg.Log.LastSeq(ctx, doc)
	if errors.Is(err, eventlog.ErrUnknownDocument) {
		return notFound(doc)
	}
	if err != nil {
		return err
	}
	return unknownVersion(doc, v, last)
}

// advance builds doc's state from the best base at or below v (see base)
// through doc's events in (base, upTo], upTo >= v, and returns it, owned by
// the caller; found reports whether v is the base's version or one of the
// events' (whether v is a version of doc). onBase, when set, sees the base
// before any event is applied; seen each event applied, with the changes
// it made. The tail comes from the event cache or the log; when the base
// must be decoded, the decoding and the log read run at the same time.
func (s *Service) advance(ctx context.Context, doc string, v, upTo uint64, onBase func(*state), seen func(*cachedEvent, []crdt.Change)) (*state, bool, error) {
	start := time.Now()
	p := s.base(ctx, doc, v)
	st := p.st
	var decodeErr error
	var decoded chan struct{}
	if st == nil {
		st = &state{doc: doc, version: p.version, updated: p.updated, author: p.author}
		if p.data == nil {
			st.d = replica()
		} else {
			decoded = make(chan struct{})
			go func() {
				defer close(decoded)
				st.d, decodeErr = loadReplica(p.data)
			}()
		}
	}
	var evs []cachedEvent
	var err error
	if p.version < upTo {
		err = s.events(ctx, doc, p.version, upTo, func(e *cachedEvent) error {
			evs = append(evs, *e)
			return nil
		})
	}
	if decoded != nil {
		<-decoded
		if decodeErr != nil {
			// A stored state that does not load: start from the empty document.
			s.log.Warn("read: stored state does not load; replaying without it", "doc", doc, "version", p.version, "err", decodeErr)
			s.metrics.errors.WithLabelValues("snapshot").Inc()
			st, p.version, p.kind = &state{doc: doc, d: replica()}, 0, "empty"
			evs, err = nil, s.events(ctx, doc, 0, upTo, func(e *cachedEvent) error {
				evs = append(evs, *e)
				return nil
			})
		}
	}
	if err != nil {
		if p.kind == "cursor" {
			s.states.put(st)
		}
		return nil, false, err
	}
	if onBase != nil {
		onBase(st)
	}
	found := st.version == v && (v == 0 || p.kind != "empty")
	for i := range evs {
		ev, evErr := evs[i].event()
		_, cs, _ := applyEvent(st.d, &ev, evErr)
		st.version, st.updated, st.author = ev.Seq, ev.Stored, ev.Author
		found = found || ev.Seq == v
		if seen != nil {
			seen(&evs[i], cs)
		}
	}
	if found && st.version == v && st.updated.IsZero() && v > 0 {
		// A snapshot at exactly v: the event's author and time.
		if err := s.eventMeta(ctx, st); err != nil {
			return nil, false, err
		}
	}
	s.metrics.travel(p.kind, len(evs), time.Since(start))
	return st, found, nil
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
	if e, ok := s.evcache.lookup(st.doc, st.version); ok {
		st.updated, st.author = time.Unix(0, e.stored).UTC(), e.author
		s.meta.put(st.doc, st.version, meta{st.updated, st.author})
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

// base chooses where the state at v starts, by estimated cost: a decoded
// state in memory at or below v (replay only), the nearest snapshot
// (decode, then replay a shorter tail), the state store's current state
// when v is beyond every snapshot, or the empty document.
func (s *Service) base(ctx context.Context, doc string, v uint64) basePlan {
	cur := s.states.take(doc, v)
	if cur != nil && v-cur.version <= s.cfg.NearEvents {
		return basePlan{kind: "cursor", st: cur, version: cur.version}
	}
	p := basePlan{kind: "empty"}
	cost := s.replayCost(doc, 0, v)
	if cur != nil {
		p, cost = basePlan{kind: "cursor", st: cur, version: cur.version}, s.replayCost(doc, cur.version, v)
	}
	if seq, data := s.nearest(ctx, doc, v); data != nil && seq > p.version {
		if c := int64(len(data))*decodeNsPerByte + s.replayCost(doc, seq, v); c < cost {
			s.states.put(cur)
			p, cost = basePlan{kind: "snapshot", version: seq, data: data}, c
		}
	}
	if v-p.version > s.cfg.StateFallback {
		if st, ok := s.currentState(ctx, doc, v); ok && st.Version > p.version {
			if c := int64(len(st.State))*decodeNsPerByte + s.replayCost(doc, st.Version, v); c < cost {
				if p.kind == "cursor" {
					s.states.put(cur)
				}
				p = basePlan{kind: "state", version: st.Version, data: st.State, updated: st.Updated, author: st.Author}
			}
		}
	}
	return p
}

// nearest is SnapshotStore.Nearest through the snapshot cache: the highest
// snapshot at or below v (data nil when there is none, or no store, or the
// store failed: snapshots only make time travel faster).
func (s *Service) nearest(ctx context.Context, doc string, v uint64) (uint64, []byte) {
	if s.cfg.Snapshots == nil {
		return 0, nil
	}
	if seq, data, ok := s.snaps.lookup(doc, v); ok && v-seq <= s.cfg.NearEvents {
		return seq, data
	}
	seq, data, err := s.cfg.Snapshots.Nearest(ctx, doc, v)
	if errors.Is(err, projections.ErrNoSnapshot) {
		s.snaps.record(doc, v, 0, nil)
		return 0, nil
	}
	if err != nil {
		s.metrics.errors.WithLabelValues("snapshot").Inc()
		s.log.Warn("read: snapshot store failed; replaying from the log", "doc", doc, "at", v, "err", err)
		return 0, nil
	}
	s.snaps.record(doc, v, seq, data)
	return seq, data
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
	return s.textAt(ctx, doc, v)
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
