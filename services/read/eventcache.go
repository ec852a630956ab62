package read

import (
	"container/list"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// cachedEvent is what time travel, history and blame need of one event.
type cachedEvent struct {
	seq, prev uint64
	stored    int64 // Unix ns
	site      uint32
	counter   uint32
	author    string
	payload   []byte // the encoded op; nil when the event is not a decodable op event
	ok        bool   // a decodable op event (applyEvent may still refuse the op)
}

func toCached(ev *eventlog.Event, evErr error) cachedEvent {
	c := cachedEvent{seq: ev.Seq, prev: ev.PrevSeq, stored: ev.Stored.UnixNano(), site: ev.Site, counter: ev.Counter, author: ev.Author}
	if evErr == nil && ev.Type == schemas.EventOp {
		c.payload, c.ok = ev.Payload, true
	}
	return c
}

// event rebuilds the parts of an eventlog.Event that applyEvent reads.
func (c *cachedEvent) event() (eventlog.Event, error) {
	ev := eventlog.Event{Seq: c.seq, PrevSeq: c.prev, Stored: time.Unix(0, c.stored).UTC()}
	ev.Type, ev.Site, ev.Counter, ev.Author, ev.Payload = schemas.EventOp, c.site, c.counter, c.author, c.payload
	if !c.ok {
		return ev, schemas.Errorf(schemas.CodeBadEvent, nil, "event %d is not an op", c.seq)
	}
	return ev, nil
}

// eventRun is a document's events with sequences in (lo, last.seq], all of
// them: consecutive events of the document (each one's prev is the one
// before), the first one's prev being lo.
type eventRun struct {
	lo  uint64
	evs []cachedEvent
}

func (r *eventRun) hi() uint64 { return r.evs[len(r.evs)-1].seq }

// eventCache keeps runs of documents' events, least recently used document
// first out, bounded by the total number of events. It spares the log the
// same tail read again (time travel to nearby versions, blame after a
// time travel), and it answers "is v a version of the document" for the
// versions it covers. Events are immutable: runs are never changed in
// place, only replaced by merged copies, so a caller may keep a slice.
type eventCache struct {
	mu  sync.Mutex
	max int
	n   int
	lru list.List // of *docEvents
	m   map[string]*docEvents
}

type docEvents struct {
	doc  string
	runs []*eventRun // sorted by lo, disjoint, not touching
	n    int
	elem *list.Element
}

func newEventCache(max int) *eventCache { return &eventCache{max: max, m: map[string]*docEvents{}} }

// after returns the cached events of doc after version base, consecutive
// from base on, and the highest sequence up to which they are complete
// (base itself when nothing is cached after it).
func (c *eventCache) after(doc string, base uint64) ([]cachedEvent, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.m[doc]
	if d == nil {
		return nil, base
	}
	c.lru.MoveToFront(d.elem)
	i, _ := slices.BinarySearchFunc(d.runs, base, func(r *eventRun, b uint64) int { return cmpU64(r.lo, b) })
	// The run that covers base is the last one with lo <= base.
	if i < len(d.runs) && d.runs[i].lo == base {
		return d.runs[i].evs, d.runs[i].hi()
	}
	if i == 0 {
		return nil, base
	}
	r := d.runs[i-1]
	if r.hi() < base {
		return nil, base
	}
	j, found := slices.BinarySearchFunc(r.evs, base, func(e cachedEvent, b uint64) int { return cmpU64(e.seq, b) })
	if !found {
		return nil, base // base is not a version of doc: no run starts at it.
	}
	return r.evs[j+1:], r.hi()
}

// lookup returns doc's cached event seq, when cached.
func (c *eventCache) lookup(doc string, seq uint64) (cachedEvent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.m[doc]
	if d == nil {
		return cachedEvent{}, false
	}
	i, _ := slices.BinarySearchFunc(d.runs, seq, func(r *eventRun, b uint64) int { return cmpU64(r.lo, b) })
	if i == 0 {
		return cachedEvent{}, false
	}
	r := d.runs[i-1] // The last run with lo < seq.
	j, found := slices.BinarySearchFunc(r.evs, seq, func(e cachedEvent, b uint64) int { return cmpU64(e.seq, b) })
	if !found {
		return cachedEvent{}, false
	}
	return r.evs[j], true
}

// add records evs, events of doc in log order as one read returned them
// (possibly several chains, when undecodable headers broke the chain).
func (c *eventCache) add(doc string, evs []cachedEvent) {
	if c.max <= 0 || len(evs) == 0 {
		return
	}
	start := 0
	for i := 1; i <= len(evs); i++ {
		if i == len(evs) || evs[i].prev != evs[i-1].seq {
			c.addRun(doc, &eventRun{lo: evs[start].prev, evs: evs[start:i:i]})
			start = i
		}
	}
}

func (c *eventCache) addRun(doc string, r *eventRun) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.m[doc]
	if d == nil {
		d = &docEvents{doc: doc}
		c.m[doc] = d
		d.elem = c.lru.PushFront(d)
	} else {
		c.lru.MoveToFront(d.elem)
	}
	// Merge with every run that overlaps or touches (lo, hi].
	lo, hi := r.lo, r.hi()
	var keep []*eventRun
	merged := r.evs
	for _, o := range d.runs {
		if o.hi() < lo || o.lo > hi {
			keep = append(keep, o)
			continue
		}
		merged = mergeEvents(merged, o.evs)
		lo = min(lo, o.lo)
	}
	nr := &eventRun{lo: lo, evs: merged}
	i, _ := slices.BinarySearchFunc(keep, lo, func(r *eventRun, b uint64) int { return cmpU64(r.lo, b) })
	d.runs = slices.Insert(keep, i, nr)
	c.n -= d.n
	d.n = 0
	for _, r := range d.runs {
		d.n += len(r.evs)
	}
	c.n += d.n
	for c.n > c.max && c.lru.Len() > 1 {
		old := c.lru.Back().Value.(*docEvents)
		if old == d {
			break
		}
		c.lru.Remove(old.elem)
		delete(c.m, old.doc)
		c.n -= old.n
	}
	if c.n > c.max { // One document over the bound: keep its newest events.
		c.trim(d)
	}
}

// trim drops d's oldest runs until the cache is within its bound.
func (c *eventCache) trim(d *docEvents) {
	for c.n > c.max && len(d.runs) > 1 {
		c.n -= len(d.runs[0].evs)
		d.n -= len(d.runs[0].evs)
		d.runs = d.runs[1:]
	}
	if c.n > c.max && len(d.runs) == 1 {
		r := d.runs[0]
		cut := max(1, min(len(r.evs)-1, c.n-c.max))
		if cut >= len(r.evs) {
			return
		}
		d.runs[0] = &eventRun{lo: r.evs[cut-1].seq, evs: r.evs[cut:]}
		c.n -= cut
		d.n -= cut
	}
}

// mergeEvents merges two seq-sorted event lists, without duplicates, into
// a new slice.
func mergeEvents(a, b []cachedEvent) []cachedEvent {
	out := make([]cachedEvent, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].seq < b[j].seq):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].seq < a[i].seq:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// events calls fn with doc's events in (base, to], in order: from the cache
// as far as it knows them, then from the log (to == 0: up to the last
// event), remembering what the log returned. fn returning errStopEvents
// ends the walk without an error.
func (s *Service) events(ctx context.Context, doc string, base, to uint64, fn func(*cachedEvent) error) error {
	cached, hi := s.evcache.after(doc, base)
	for i := range cached {
		e := &cached[i]
		if to != 0 && e.seq > to {
			return nil
		}
		if err := fn(e); err != nil {
			if err == errStopEvents {
				return nil
			}
			return err
		}
	}
	if to != 0 && hi >= to {
		return nil
	}
	var got []cachedEvent
	err := s.cfg.Log.Read(ctx, doc, hi+1, to, func(ev eventlog.Event, evErr error) error {
		got = append(got, toCached(&ev, evErr))
		return fn(&got[len(got)-1])
	})
	s.evcache.add(doc, got)
	s.metrics.logEvents.Add(float64(len(got)))
	if errors.Is(err, eventlog.ErrUnknownDocument) {
		return notFound(doc)
	}
	if err == errStopEvents {
		return nil
	}
	return err
}

// errStopEvents ends Service.events early.
var errStopEvents = errors.New("stop")
