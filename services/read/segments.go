package read

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/internal/baseline"
)

// Text segments: time travel that needs only the text (GET ?at=) does not
// keep CRDT states, which cost about 150 bytes a code point decoded. When
// it builds a state it also records, for a stretch of versions after the
// base, the base's text and each event's changes as crdt.Apply returned
// them (exact edits by position, deleted text included). The text at any
// version of the stretch is then the base text with the changes up to that
// version applied, in a gap buffer: no snapshot, no decoding, no log. A
// segment of about a thousand versions of a 100,000-character document
// takes some 150 KB, so a small budget covers a long history.

// segEvent is one event of a segment: its changes to the text.
type segEvent struct {
	seq     uint64
	stored  int64
	author  string
	changes []crdt.Change
}

// segment is doc's text at version from, and every event of doc after it
// up to its last one, in order.
type segment struct {
	doc   string
	from  uint64
	base  string
	evs   []segEvent
	bytes int
	elem  *list.Element
}

func (g *segment) to() uint64 {
	if len(g.evs) == 0 {
		return g.from
	}
	return g.evs[len(g.evs)-1].seq
}

// textAt returns the text at version v of the segment, and whether v is one
// of its versions.
func (g *segment) textAt(v uint64) (string, *segEvent, bool) {
	if v == g.from {
		return g.base, nil, true
	}
	n, found := slices.BinarySearchFunc(g.evs, v, func(e segEvent, v uint64) int { return cmpU64(e.seq, v) })
	if !found {
		return "", nil, false
	}
	var b baseline.Buffer
	_ = b.Insert(0, g.base)
	for i := range n + 1 {
		for _, c := range g.evs[i].changes {
			if c.Kind == crdt.Inserted {
				_ = b.Insert(c.Index, c.Text)
			} else {
				_ = b.Delete(c.Index, utf8.RuneCountInString(c.Text))
			}
		}
	}
	return b.String(), &g.evs[n], true
}

// segCache keeps segments, least recently used first out, bounded in bytes.
type segCache struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	lru      list.List             // of *segment
	byDoc    map[string][]*segment // sorted by from
}

func newSegCache(maxBytes int) *segCache {
	return &segCache{maxBytes: maxBytes, byDoc: map[string][]*segment{}}
}

// find returns a segment of doc that covers v (from <= v <= to).
func (c *segCache) find(doc string, v uint64) *segment {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs := c.byDoc[doc]
	i, _ := slices.BinarySearchFunc(gs, v+1, func(g *segment, v uint64) int { return cmpU64(g.from, v) })
	for j := i - 1; j >= 0 && j >= i-4; j-- { // Segments rarely nest deeper.
		if gs[j].to() >= v {
			c.lru.MoveToFront(gs[j].elem)
			return gs[j]
		}
	}
	return nil
}

func (c *segCache) put(g *segment) {
	if c.maxBytes <= 0 || g.bytes > c.maxBytes/2 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	gs := c.byDoc[g.doc]
	i, _ := slices.BinarySearchFunc(gs, g.from, func(g *segment, v uint64) int { return cmpU64(g.from, v) })
	c.byDoc[g.doc] = slices.Insert(gs, i, g)
	g.elem = c.lru.PushFront(g)
	c.bytes += g.bytes
	for c.bytes > c.maxBytes {
		old := c.lru.Back().Value.(*segment)
		c.lru.Remove(old.elem)
		os := c.byDoc[old.doc]
		j := slices.Index(os, old)
		os = slices.Delete(os, j, j+1)
		if len(os) == 0 {
			delete(c.byDoc, old.doc)
		} else {
			c.byDoc[old.doc] = os
		}
		c.bytes -= old.bytes
	}
}

// textAt returns doc's text right after version v: from a segment, or by
// building a state at v that goes on for SegmentEvents more sequences and
// keeping the stretch as a segment.
func (s *Service) textAt(ctx context.Context, doc string, v uint64) (Document, error) {
	if g := s.segs.find(doc, v); g != nil {
		text, ev, ok := g.textAt(v)
		if !ok {
			return Document{}, s.notAVersion(ctx, doc, v)
		}
		d := Document{ID: doc, Version: v, Text: text, Length: utf8.RuneCountInString(text), Source: SourceLog}
		if ev != nil {
			d.Updated, d.Author = apiTime(time.Unix(0, ev.stored)), ev.author
		} else {
			st := &state{doc: doc, version: v}
			if err := s.eventMeta(ctx, st); err != nil {
				return Document{}, err
			}
			d.Updated, d.Author = apiTime(st.updated), st.author
		}
		s.metrics.travel("segment", 0, 0)
		return d, nil
	}
	g := &segment{doc: doc}
	var text string
	var at *state
	st, found, err := s.advance(ctx, doc, v, v+s.cfg.SegmentEvents, func(base *state) {
		g.from, g.base = base.version, base.d.Text()
		g.bytes = len(g.base) + 64
	}, func(e *cachedEvent, cs []crdt.Change) {
		g.evs = append(g.evs, segEvent{seq: e.seq, stored: e.stored, author: e.author, changes: cs})
		g.bytes += 64 + 40*len(cs)
		for _, c := range cs {
			g.bytes += len(c.Text)
		}
	})
	if err != nil {
		return Document{}, err
	}
	defer s.checkin(st)
	s.segs.put(g)
	if !found {
		return Document{}, s.notAVersion(ctx, doc, v)
	}
	if st.version == v {
		at = st
		text = st.d.Text()
	} else {
		var ev *segEvent
		text, ev, _ = g.textAt(v)
		at = &state{doc: doc, version: v}
		if ev != nil {
			at.updated, at.author = time.Unix(0, ev.stored), ev.author
		} else if err := s.eventMeta(ctx, at); err != nil {
			return Document{}, err
		}
	}
	return Document{ID: doc, Version: v, Updated: apiTime(at.updated), Author: at.author, Text: text, Length: utf8.RuneCountInString(text), Source: SourceLog}, nil
}
