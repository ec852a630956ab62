package read

import (
	"context"
	"errors"
	"unicode/utf8"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// Where a Document was read from.
const (
	SourceCache = "cache" // the read model (Redis)
	SourceState = "state" // the state store (Postgres)
	SourceLog   = "log"   // folded from the log (time travel, or a document not projected yet)
)

// notFound is the one error of a document that does not exist, or that the
// caller may not read: the two must be indistinguishable.
func notFound(doc string) error {
	return schemas.Errorf(schemas.CodeUnknownDocument, nil, "document %q not found", doc)
}

// Current returns doc's current text, cache-aside:
//
//  1. the cache (read model): a hit is served as is;
//  2. on a miss (or when the cache is down), the state store; the entry
//     read is then put in the cache with its own version, through
//     ReadModel.Upsert, which never replaces a newer version. So a reader
//     that read version 5 and fills the cache after the projector committed
//     and upserted version 6 leaves 6 in place: a stale entry is never
//     installed over a newer one;
//  3. a document the projector has not reached yet is folded from the log
//     (time travel to its last event).
//
// The cache is only as fresh as the projector's upserts, which follow its
// commits (see docs/adr/0008).
func (s *Service) Current(ctx context.Context, doc string) (Document, error) {
	if err := eventlog.ValidateDocID(doc); err != nil {
		return Document{}, err
	}
	if e, ok := s.cache.get(ctx, doc); ok {
		d := Document{ID: doc, Version: e.Version, Text: e.Text, Length: utf8.RuneCountInString(e.Text), Source: SourceCache}
		s.fillMeta(ctx, &d)
		s.metrics.served.WithLabelValues(SourceCache).Inc()
		return d, nil
	}
	st, found, err := s.loadState(ctx, doc)
	if err != nil {
		// The state store is down: the log still knows.
		s.metrics.errors.WithLabelValues("state").Inc()
		s.log.Warn("read: state store failed; folding the document from the log", "doc", doc, "err", err)
	}
	s.cfg.Fault("state-loaded")
	if found {
		s.cache.fill(ctx, projections.ReadEntry{Doc: doc, Version: st.Version, Text: st.Text})
		s.meta.put(doc, st.Version, meta{st.Updated, st.Author})
		s.metrics.served.WithLabelValues(SourceState).Inc()
		return Document{ID: doc, Version: st.Version, Updated: apiTime(st.Updated), Author: st.Author,
			Length: utf8.RuneCountInString(st.Text), Text: st.Text, Source: SourceState}, nil
	}
	last, lerr := s.cfg.Log.LastSeq(ctx, doc)
	if errors.Is(lerr, eventlog.ErrUnknownDocument) {
		if err != nil {
			return Document{}, err // Not found may only mean the state store is down.
		}
		return Document{}, notFound(doc)
	}
	if lerr != nil {
		return Document{}, lerr
	}
	d, err := s.At(ctx, doc, last)
	if err != nil {
		return Document{}, err
	}
	s.cache.fill(ctx, projections.ReadEntry{Doc: doc, Version: d.Version, Text: d.Text})
	s.metrics.served.WithLabelValues(SourceLog).Inc()
	return d, nil
}

// loadState reads doc from the live generation of the state store.
func (s *Service) loadState(ctx context.Context, doc string) (projections.DocState, bool, error) {
	store, err := s.cfg.State.Live(ctx)
	if err != nil {
		return projections.DocState{}, false, err
	}
	m, err := store.Load(ctx, []string{doc})
	if err != nil {
		return projections.DocState{}, false, err
	}
	st, ok := m[doc]
	return st, ok, nil
}

// fillMeta sets d's author and time from its version's event: remembered,
// or read from the log (the read model keeps only version and text). A
// failure leaves them empty: the text is what was asked for.
func (s *Service) fillMeta(ctx context.Context, d *Document) {
	st := &state{doc: d.ID, version: d.Version}
	if err := s.eventMeta(ctx, st); err != nil {
		s.log.Debug("read: no author and time for a cached version", "doc", d.ID, "version", d.Version, "err", err)
		return
	}
	d.Updated, d.Author = apiTime(st.updated), st.author
}

// Latest returns doc's last version in the log.
func (s *Service) Latest(ctx context.Context, doc string) (uint64, error) {
	last, err := s.cfg.Log.LastSeq(ctx, doc)
	if errors.Is(err, eventlog.ErrUnknownDocument) {
		return 0, notFound(doc)
	}
	return last, err
}
