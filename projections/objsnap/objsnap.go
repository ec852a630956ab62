// Package objsnap keeps document snapshots in a JetStream Object Store, the
// embedded default of projections.SnapshotStore.
//
// Objects are named <doc>/<version as 20 zero-padded digits>, as in S3. The
// Object Store cannot list by prefix, so each document also has an index
// entry in a KV bucket (key = doc, value = its snapshot versions,
// increasing), updated with compare-and-set after the object is stored and
// before pruned objects are deleted: the index never names a missing
// object for long, and Nearest skips one that is gone.
package objsnap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/projections"
)

// Store is a snapshot store on the log's server. It is safe for concurrent
// use.
type Store struct {
	objs  *eventlog.Objects
	index *eventlog.Bucket
}

// Open opens (creating if needed) the object bucket <name> and its index
// bucket <name>_index.
func Open(ctx context.Context, log *eventlog.Log, name string) (*Store, error) {
	objs, err := log.OpenObjects(ctx, name, "Palimpsest document snapshots")
	if err != nil {
		return nil, err
	}
	index, err := log.OpenBucket(ctx, eventlog.BucketConfig{Name: name + "_index",
		Description: "Palimpsest snapshot index: the snapshot versions of each document"})
	if err != nil {
		return nil, err
	}
	return &Store{objs: objs, index: index}, nil
}

func name(doc string, seq uint64) string { return fmt.Sprintf("%s/%020d", doc, seq) }

func (s *Store) versions(ctx context.Context, doc string) ([]uint64, uint64, error) {
	v, rev, err := s.index.Get(ctx, doc)
	if err != nil {
		return nil, 0, err
	}
	var out []uint64
	for len(v) > 0 {
		x, n := binary.Uvarint(v)
		if n <= 0 {
			return nil, 0, fmt.Errorf("objsnap: index of %q is malformed", doc)
		}
		out, v = append(out, x), v[n:]
	}
	return out, rev, nil
}

func encode(vs []uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// update changes doc's index with f, retrying on concurrent changes, and
// returns the old and new lists.
func (s *Store) update(ctx context.Context, doc string, f func([]uint64) []uint64) (old, cur []uint64, err error) {
	for {
		vs, rev, err := s.versions(ctx, doc)
		if err != nil {
			return nil, nil, err
		}
		nv := f(slices.Clone(vs))
		if slices.Equal(nv, vs) {
			return vs, nv, nil
		}
		_, err = s.index.Put(ctx, doc, encode(nv), rev)
		if errors.Is(err, eventlog.ErrWrongSequence) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		return vs, nv, nil
	}
}

// Put implements projections.SnapshotStore.
func (s *Store) Put(ctx context.Context, doc string, seq uint64, state []byte) error {
	if err := s.objs.Put(ctx, name(doc, seq), state); err != nil {
		return err
	}
	_, _, err := s.update(ctx, doc, func(vs []uint64) []uint64 {
		i, found := slices.BinarySearch(vs, seq)
		if found {
			return vs
		}
		return slices.Insert(vs, i, seq)
	})
	return err
}

// Nearest implements projections.SnapshotStore.
func (s *Store) Nearest(ctx context.Context, doc string, atSeq uint64) (uint64, []byte, error) {
	vs, _, err := s.versions(ctx, doc)
	if err != nil {
		return 0, nil, err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i] > atSeq {
			continue
		}
		data, found, err := s.objs.Get(ctx, name(doc, vs[i]))
		if err != nil {
			return 0, nil, err
		}
		if found {
			return vs[i], data, nil
		}
	}
	return 0, nil, fmt.Errorf("%w: document %q at %d", projections.ErrNoSnapshot, doc, atSeq)
}

// Prune implements projections.SnapshotStore.
func (s *Store) Prune(ctx context.Context, doc string, keep int) error {
	old, cur, err := s.update(ctx, doc, func(vs []uint64) []uint64 {
		if len(vs) <= keep {
			return vs
		}
		return vs[len(vs)-keep:]
	})
	if err != nil {
		return err
	}
	for _, v := range old {
		if _, found := slices.BinarySearch(cur, v); !found {
			if err := s.objs.Delete(ctx, name(doc, v)); err != nil {
				return err
			}
		}
	}
	return nil
}
