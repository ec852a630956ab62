package read

import (
	"container/list"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// Blame: every element's identifier ends in its origin, the dot (site,
// counter) the inserting op gave it; an op of site s with counter c spends
// the counters [c, c+Span) of s. So the event that inserted an element is
// the one event of its site whose counter range holds the element's
// counter: exact, no guessing from positions or times. An index per
// document holds every op's counter range with its event's author and
// time; it only grows (an element present at version v was inserted by an
// event at or below v, so an index built further than v answers for v too).

// BlameRun is a run of text inserted by one author (or one event).
type BlameRun struct {
	Pos    int    `json:"pos"`    // code points
	Length int    `json:"length"` // code points
	Text   string `json:"text"`
	Author string `json:"author"`
	// Version and Time are the run's most recent inserting event;
	// FirstVersion and FirstTime its earliest (the same for one event).
	Version      uint64    `json:"version"`
	Time         time.Time `json:"time,omitzero"`
	FirstVersion uint64    `json:"first_version"`
	FirstTime    time.Time `json:"first_time,omitzero"`
}

// Blame is who wrote each run of a document's text at a version.
type Blame struct {
	ID      string     `json:"id"`
	Version uint64     `json:"version"`
	Runs    []BlameRun `json:"runs"`
}

// Blame granularities.
const (
	ByAuthor = "author" // adjacent text of one author is one run
	ByEvent  = "event"  // each run is the text of one inserting event
)

// opSpan is one op's counter range [counter, end) and its event.
type opSpan struct {
	counter, end uint32
	ev           int32 // index into docIndex.events
}

type evMeta struct {
	seq    uint64
	stored int64 // Unix ns
	author string
}

// docIndex maps (site, counter) to events for one document, up to upTo.
type docIndex struct {
	mu      sync.Mutex
	doc     string
	upTo    uint64
	sites   map[uint32][]opSpan // sorted by counter, non-overlapping
	events  []evMeta
	authors map[string]string // interned
	elem    *list.Element
}

// add records ev's op (any kind: every op spends counters). An op that
// overlaps a recorded range is one the CRDT refused or ignored.
func (x *docIndex) add(ev *eventlog.Event, evErr error) {
	x.upTo = ev.Seq
	if evErr != nil || ev.Type != schemas.EventOp {
		return
	}
	op, err := crdt.DecodeOp(ev.Payload)
	if err != nil || uint32(op.Site) != ev.Site || op.Counter != ev.Counter {
		return
	}
	sp := opSpan{counter: op.Counter, end: op.Counter + op.Span()}
	ss := x.sites[ev.Site]
	i, _ := slices.BinarySearchFunc(ss, sp.counter, func(s opSpan, c uint32) int { return cmpU64(uint64(s.counter), uint64(c)) })
	if (i > 0 && ss[i-1].end > sp.counter) || (i < len(ss) && ss[i].counter < sp.end) {
		return
	}
	a, ok := x.authors[ev.Author]
	if !ok {
		a = ev.Author
		x.authors[a] = a
	}
	sp.ev = int32(len(x.events))
	x.events = append(x.events, evMeta{seq: ev.Seq, stored: apiTime(ev.Stored).UnixNano(), author: a})
	x.sites[ev.Site] = slices.Insert(ss, i, sp)
}

// lookup returns the event that spent dot's counter.
func (x *docIndex) lookup(dot crdt.Dot) (evMeta, bool) {
	ss := x.sites[uint32(dot.Site)]
	i, found := slices.BinarySearchFunc(ss, dot.Counter, func(s opSpan, c uint32) int { return cmpU64(uint64(s.counter), uint64(c)) })
	if !found {
		i--
	}
	if i < 0 || dot.Counter >= ss[i].end {
		return evMeta{}, false
	}
	return x.events[ss[i].ev], true
}

// indexCache keeps documents' indexes, bounded by their total events.
type indexCache struct {
	mu     sync.Mutex
	max    int
	events int
	lru    list.List // of *docIndex
	m      map[string]*docIndex
}

func newIndexCache(max int) *indexCache { return &indexCache{max: max, m: map[string]*docIndex{}} }

// get returns doc's index, creating an empty one; the caller locks it.
func (c *indexCache) get(doc string) *docIndex {
	c.mu.Lock()
	defer c.mu.Unlock()
	x := c.m[doc]
	if x == nil {
		x = &docIndex{doc: doc, sites: map[uint32][]opSpan{}, authors: map[string]string{}}
		if c.max > 0 {
			c.m[doc] = x
			x.elem = c.lru.PushFront(x)
		}
		return x
	}
	c.lru.MoveToFront(x.elem)
	return x
}

// grew accounts for n more events of x and evicts over the bound (never x).
func (c *indexCache) grew(x *docIndex, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if x.elem == nil {
		return
	}
	c.events += n
	for c.events > c.max && c.lru.Len() > 1 {
		old := c.lru.Back().Value.(*docIndex)
		if old == x {
			break
		}
		c.lru.Remove(old.elem)
		old.elem = nil
		delete(c.m, old.doc)
		c.events -= len(old.events)
	}
}

// Blame returns who wrote each run of doc's text at version v (0: the
// latest), by author or by event (granularity ByAuthor, ByEvent).
func (s *Service) Blame(ctx context.Context, doc string, v uint64, granularity string) (Blame, error) {
	if err := eventlog.ValidateDocID(doc); err != nil {
		return Blame{}, err
	}
	if granularity == "" {
		granularity = ByAuthor
	}
	if granularity != ByAuthor && granularity != ByEvent {
		return Blame{}, schemas.Errorf(schemas.CodeBadQuery, nil, "granularity %q: want %q or %q", truncate(granularity, 32), ByAuthor, ByEvent)
	}
	if v == 0 {
		last, err := s.cfg.Log.LastSeq(ctx, doc)
		if errors.Is(err, eventlog.ErrUnknownDocument) {
			return Blame{}, notFound(doc)
		}
		if err != nil {
			return Blame{}, err
		}
		v = last
	}
	els, err := s.elementsAt(ctx, doc, v)
	if err != nil {
		return Blame{}, err
	}
	x := s.index.get(doc)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.upTo < v {
		before := len(x.events)
		err := s.cfg.Log.Read(ctx, doc, x.upTo+1, v, func(ev eventlog.Event, evErr error) error {
			x.add(&ev, evErr)
			return nil
		})
		s.index.grew(x, len(x.events)-before)
		if err != nil {
			return Blame{}, err
		}
	}
	b := Blame{ID: doc, Version: v, Runs: []BlameRun{}}
	var runes []rune
	flush := func() {
		if n := len(b.Runs); n > 0 {
			b.Runs[n-1].Text = string(runes)
			runes = runes[:0]
		}
	}
	var prev evMeta
	for i, id := range els.ids {
		m, ok := x.lookup(id.Origin())
		if !ok {
			s.log.Warn("read: blame found no event for an element", "doc", doc, "version", v, "origin", id.Origin())
		}
		if n := len(b.Runs); n > 0 && i > 0 && (granularity == ByEvent && m.seq == prev.seq || granularity == ByAuthor && m.author == prev.author) {
			r := &b.Runs[n-1]
			r.Length++
			if m.seq > r.Version {
				r.Version, r.Time = m.seq, time.Unix(0, m.stored).UTC()
			}
			if m.seq < r.FirstVersion {
				r.FirstVersion, r.FirstTime = m.seq, time.Unix(0, m.stored).UTC()
			}
			runes = append(runes, els.runes[i])
			prev = m
			continue
		}
		flush()
		t := time.Time{}
		if ok {
			t = time.Unix(0, m.stored).UTC()
		}
		b.Runs = append(b.Runs, BlameRun{Pos: i, Length: 1, Author: m.author, Version: m.seq, Time: t, FirstVersion: m.seq, FirstTime: t})
		runes = append(runes, els.runes[i])
		prev = m
	}
	flush()
	return b, nil
}
