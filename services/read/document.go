package read

import (
	"container/list"
	"sync"
	"time"
)

// Document is a document's text at one version.
type Document struct {
	ID string `json:"id"`
	// Version is the sequence of the last event folded into Text.
	Version uint64 `json:"version"`
	// Updated is when that event was stored (the log's clock, to the
	// microsecond); Author who made it. Either may be empty when unknown.
	Updated time.Time `json:"updated,omitzero"`
	Author  string    `json:"author,omitempty"`
	// Length is the text's length in code points.
	Length int    `json:"length"`
	Text   string `json:"text"`
	// Source says where it was read from (SourceCache, ...); the HTTP API
	// sends it in the X-Palimpsest-Source header.
	Source string `json:"-"`
}

// apiTime is how the API gives times: UTC, to the microsecond (what
// PostgreSQL keeps), so one version has one time whatever store answered.
func apiTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// meta is what a version's event says besides the op.
type meta struct {
	updated time.Time
	author  string
}

type metaKey struct {
	doc string
	v   uint64
}

// metaCache remembers the author and time of versions, least recently used
// first out: the read model keeps only version and text.
type metaCache struct {
	mu  sync.Mutex
	max int
	lru list.List // of metaKey
	m   map[metaKey]metaEntry
}

type metaEntry struct {
	meta
	elem *list.Element
}

func newMetaCache(max int) *metaCache {
	return &metaCache{max: max, m: map[metaKey]metaEntry{}}
}

func (c *metaCache) get(doc string, v uint64) (meta, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[metaKey{doc, v}]
	if ok {
		c.lru.MoveToFront(e.elem)
	}
	return e.meta, ok
}

func (c *metaCache) put(doc string, v uint64, m meta) {
	if v == 0 || m.updated.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := metaKey{doc, v}
	if e, ok := c.m[k]; ok {
		c.lru.MoveToFront(e.elem)
		return
	}
	c.m[k] = metaEntry{m, c.lru.PushFront(k)}
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(metaKey)
		delete(c.m, old)
	}
}
