package read

import (
	"container/list"
	"slices"
	"sync"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
)

// state is a decoded document at one version. A state taken from the cache
// belongs to its taker alone until it is put back: time travel moves it
// forward by applying ops, so nobody else may read it meanwhile.
type state struct {
	doc     string
	version uint64 // 0: before the document's first event
	d       *crdt.Doc
	// The event that made the version (zero for version 0).
	updated time.Time
	author  string

	elem *list.Element
}

// stateCache keeps decoded states of documents at versions, least recently
// used first out, bounded by count and by code points. take hands a state
// out exclusively (it leaves the cache), put returns it.
type stateCache struct {
	mu       sync.Mutex
	maxN     int
	maxElems int
	elems    int
	lru      list.List           // of *state, most recent at the front
	byDoc    map[string][]*state // sorted by version
}

func newStateCache(maxN, maxElems int) *stateCache {
	return &stateCache{maxN: maxN, maxElems: maxElems, byDoc: map[string][]*state{}}
}

// take removes and returns doc's cached state with the highest version at or
// below v, or nil.
func (c *stateCache) take(doc string, v uint64) *state {
	c.mu.Lock()
	defer c.mu.Unlock()
	ss := c.byDoc[doc]
	i, found := slices.BinarySearchFunc(ss, v, func(s *state, v uint64) int { return cmpU64(s.version, v) })
	if !found {
		i--
	}
	if i < 0 {
		return nil
	}
	s := ss[i]
	c.removeLocked(s, i)
	return s
}

// put caches s (replacing a state of the same document and version) and
// evicts the least recently used states over the bounds.
func (c *stateCache) put(s *state) {
	if c.maxN <= 0 || s == nil || s.d == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ss := c.byDoc[s.doc]
	i, found := slices.BinarySearchFunc(ss, s.version, func(s *state, v uint64) int { return cmpU64(s.version, v) })
	if found {
		c.removeLocked(ss[i], i)
		ss = c.byDoc[s.doc]
	}
	c.byDoc[s.doc] = slices.Insert(ss, i, s)
	s.elem = c.lru.PushFront(s)
	c.elems += s.d.Len()
	for c.lru.Len() > c.maxN || (c.elems > c.maxElems && c.lru.Len() > 1) {
		old := c.lru.Back().Value.(*state)
		j, _ := slices.BinarySearchFunc(c.byDoc[old.doc], old.version, func(s *state, v uint64) int { return cmpU64(s.version, v) })
		c.removeLocked(old, j)
	}
}

// removeLocked drops s, which is c.byDoc[s.doc][i].
func (c *stateCache) removeLocked(s *state, i int) {
	ss := slices.Delete(c.byDoc[s.doc], i, i+1)
	if len(ss) == 0 {
		delete(c.byDoc, s.doc)
	} else {
		c.byDoc[s.doc] = ss
	}
	c.lru.Remove(s.elem)
	s.elem = nil
	c.elems -= s.d.Len()
}

// len returns the number of cached states.
func (c *stateCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
