package read

import (
	"container/list"
	"slices"
	"sync"
)

// snapCache remembers the answers of SnapshotStore.Nearest. A snapshot is
// immutable (the state of a document at one version), so a cached one is
// never wrong; the only question is whether the store has a closer one. An
// entry records, besides the snapshot at seq, the highest version covered
// for which Nearest answered seq: for any v in [seq, covered] the answer is
// seq again, unless a snapshot was written since between seq and v, which
// the projector never does below a document's current version (a rebuild
// may, and then time travel merely replays a few more events). An entry
// with seq 0 and no data records "no snapshot at or below covered".
type snapCache struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	lru      list.List // of *snapEntry
	byDoc    map[string][]*snapEntry
}

type snapEntry struct {
	doc     string
	seq     uint64
	covered uint64
	data    []byte
	elem    *list.Element
}

func newSnapCache(maxBytes int) *snapCache {
	return &snapCache{maxBytes: maxBytes, byDoc: map[string][]*snapEntry{}}
}

func bySeq(e *snapEntry, v uint64) int { return cmpU64(e.seq, v) }

// lookup returns the snapshot Nearest(doc, v) would return, when known:
// ok is false when the store must be asked; data is nil when the store has
// no snapshot at or below v.
func (c *snapCache) lookup(doc string, v uint64) (seq uint64, data []byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	es := c.byDoc[doc]
	i, found := slices.BinarySearchFunc(es, v, bySeq)
	if !found {
		i--
	}
	if i < 0 || es[i].covered < v {
		return 0, nil, false
	}
	e := es[i]
	c.lru.MoveToFront(e.elem)
	return e.seq, e.data, true
}

// record stores Nearest(doc, v)'s answer: the snapshot at seq (seq 0 and
// nil data: none).
func (c *snapCache) record(doc string, v, seq uint64, data []byte) {
	if c.maxBytes <= 0 || len(data) > c.maxBytes/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	es := c.byDoc[doc]
	i, found := slices.BinarySearchFunc(es, seq, bySeq)
	if found {
		e := es[i]
		e.covered = max(e.covered, v)
		c.lru.MoveToFront(e.elem)
		return
	}
	e := &snapEntry{doc: doc, seq: seq, covered: v, data: data}
	c.byDoc[doc] = slices.Insert(es, i, e)
	e.elem = c.lru.PushFront(e)
	c.bytes += len(data) + 64
	for c.bytes > c.maxBytes {
		old := c.lru.Back().Value.(*snapEntry)
		os := c.byDoc[old.doc]
		j, _ := slices.BinarySearchFunc(os, old.seq, bySeq)
		os = slices.Delete(os, j, j+1)
		if len(os) == 0 {
			delete(c.byDoc, old.doc)
		} else {
			c.byDoc[old.doc] = os
		}
		c.lru.Remove(old.elem)
		c.bytes -= len(old.data) + 64
	}
}
