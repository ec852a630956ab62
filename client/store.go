package client

import (
	"slices"
	"sync"
)

// Store keeps a client's unacknowledged ops across process restarts (the
// browser's IndexedDB plays this part for the web editor). Implementations
// must be safe for concurrent use.
//
// A client that restores pending ops keeps their site and refuses local
// edits (ErrNotReady) until it has caught up with the log once, because
// before that it cannot know its site's next counter.
type Store interface {
	// Load returns the document's saved site and pending ops, oldest first;
	// site 0 when nothing is saved.
	Load(doc string) (site uint32, pending [][]byte, err error)
	// Save replaces the document's saved state. The client calls it after
	// each local edit and each acknowledgement, before it reports either.
	Save(doc string, site uint32, pending [][]byte) error
}

// MemoryStore is a Store in memory, for tests and for programs that restart
// clients in one process.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]memEntry
}

type memEntry struct {
	site    uint32
	pending [][]byte
}

// Load implements Store.
func (s *MemoryStore) Load(doc string) (uint32, [][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[doc]
	return e.site, slices.Clone(e.pending), nil
}

// Save implements Store.
func (s *MemoryStore) Save(doc string, site uint32, pending [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]memEntry{}
	}
	s.m[doc] = memEntry{site: site, pending: slices.Clone(pending)}
	return nil
}
