package read

import (
	"bytes"
	"container/list"
	"encoding/json"
	"sync"
)

// bodyCache keeps encoded JSON bodies of documents by (document, version):
// a version names one text, author and time, so its body never changes,
// and encoding a long text is most of the cost of a cache hit. Bounded in
// bytes, least recently used first out.
type bodyCache struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	lru      list.List // of *bodyEntry
	m        map[metaKey]*bodyEntry
}

type bodyEntry struct {
	key  metaKey
	body []byte
	elem *list.Element
}

func newBodyCache(maxBytes int) *bodyCache {
	return &bodyCache{maxBytes: maxBytes, m: map[metaKey]*bodyEntry{}}
}

// body returns d's encoded body, from the cache or encoded now.
func (c *bodyCache) body(d *Document) []byte {
	k := metaKey{d.ID, d.Version}
	c.mu.Lock()
	if e, ok := c.m[k]; ok {
		c.lru.MoveToFront(e.elem)
		c.mu.Unlock()
		return e.body
	}
	c.mu.Unlock()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(d) // A Document always encodes.
	b := buf.Bytes()
	if c.maxBytes <= 0 || len(b) > c.maxBytes/4 || d.Updated.IsZero() {
		return b // Without its time a body may still change (filled later).
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return b
	}
	e := &bodyEntry{key: k, body: b}
	e.elem = c.lru.PushFront(e)
	c.m[k] = e
	c.bytes += len(b)
	for c.bytes > c.maxBytes {
		old := c.lru.Remove(c.lru.Back()).(*bodyEntry)
		delete(c.m, old.key)
		c.bytes -= len(old.body)
	}
	return b
}
