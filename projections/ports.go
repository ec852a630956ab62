package projections

import (
	"context"
	"errors"
	"time"
)

// DocState is one document's projected state: the fold of its events up to
// Version.
type DocState struct {
	Doc string
	// Version is the sequence of the last event folded into the state; an
	// event at or below it is never applied again.
	Version uint64
	// Ops is how many events were folded (poison events excluded).
	Ops uint64
	// Updated is when the last folded event was appended; Author who made it.
	Updated time.Time
	Author  string
	// Text is the document's text; State its CRDT state (crdt.AppendSnapshot).
	Text  string
	State []byte
	// Rev is the adapter's revision of the stored row, for optimistic
	// concurrency (KV: the entry's revision). The core copies it from Load to
	// Commit and never reads it; Commit sets it to the new revision.
	Rev uint64
}

// Checkpoint says that every event of Partition with a sequence at or below
// Seq is folded into the store.
type Checkpoint struct {
	Partition int
	Seq       uint64
}

// Commit is one atomic write: document states and partition checkpoints.
type Commit struct {
	Docs        []DocState
	Checkpoints []Checkpoint
	// Epoch fences writers: the commit is refused with ErrFenced when a
	// checkpoint it writes was written with a higher epoch (a newer owner of
	// the partition). Lease revisions, which only grow, are the epochs.
	Epoch uint64
}

// StateStore holds the state projection of one generation. Implementations
// are safe for concurrent use.
type StateStore interface {
	// Load returns the stored states of docs; a document never committed is
	// absent from the map.
	Load(ctx context.Context, docs []string) (map[string]DocState, error)
	// Checkpoint returns partition p's checkpoint and the epoch it was
	// written with (0, 0 when never written).
	Checkpoint(ctx context.Context, p int) (seq, epoch uint64, err error)
	// Commit writes c atomically: after a crash either all of it is stored
	// or none of it (or, for adapters without transactions, see their
	// docs: each document atomically, and checkpoints only after every
	// document). A checkpoint never moves backwards. It returns ErrFenced when
	// a newer epoch owns a partition, ErrNotLive when this generation was
	// retired (a newer one was promoted; a fresh one not yet promoted takes
	// commits). On success it sets each c.Docs[i].Rev.
	Commit(ctx context.Context, c *Commit) error
}

// StateBackend keeps generations of the state projection: the live one,
// which readers and projectors use, and fresh ones that a rebuild fills
// beside it before it promotes them.
type StateBackend interface {
	// Live returns the live generation's store.
	Live(ctx context.Context) (StateStore, error)
	// Fresh creates an empty generation beside the live one.
	Fresh(ctx context.Context) (StateStore, error)
	// Promote makes s (from Fresh) the live generation, atomically: readers
	// see the old one or the new one, never a mix; a commit to the old one
	// after this returns ErrNotLive.
	Promote(ctx context.Context, s StateStore) error
}

// SnapshotStore keeps CRDT states of documents at chosen versions, for time
// travel and for starting a document's fold somewhere after sequence 0.
// Implementations are safe for concurrent use.
type SnapshotStore interface {
	// Put stores doc's state at version seq (replacing an equal key).
	Put(ctx context.Context, doc string, seq uint64, state []byte) error
	// Nearest returns doc's snapshot with the highest version at or below
	// atSeq, or ErrNoSnapshot.
	Nearest(ctx context.Context, doc string, atSeq uint64) (seq uint64, state []byte, err error)
	// Prune deletes all but doc's keep newest snapshots.
	Prune(ctx context.Context, doc string, keep int) error
}

// ReadEntry is what the read model keeps of a document.
type ReadEntry struct {
	Doc     string
	Version uint64
	Text    string
}

// ReadModel is the fast read path: current text and version per document.
// Implementations are safe for concurrent use.
type ReadModel interface {
	// Upsert stores each entry unless the stored version is at or above
	// the entry's: a newer version is never replaced by an older one.
	Upsert(ctx context.Context, es []ReadEntry) error
	// Get returns doc's entry, found == false when there is none (never
	// stored, or expired).
	Get(ctx context.Context, doc string) (e ReadEntry, found bool, err error)
}

var (
	// ErrFenced: a newer owner wrote the partition's checkpoint; this writer
	// must stop.
	ErrFenced = errors.New("projections: fenced by a newer owner of the partition")
	// ErrNotLive: the generation was replaced by a rebuild.
	ErrNotLive = errors.New("projections: generation no longer live")
	// ErrNoSnapshot: no snapshot at or below the asked version.
	ErrNoSnapshot = errors.New("projections: no snapshot at or before that version")
)
