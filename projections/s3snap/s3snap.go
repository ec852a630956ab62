// Package s3snap keeps document snapshots in S3 or any S3-compatible store
// (MinIO), as projections.SnapshotStore.
//
// Keys are <prefix><doc>/<version as 20 zero-padded digits>, so a listing of
// one document's keys (which S3 returns in key order) is in version order,
// and the nearest snapshot at or before a version is the last key not above
// it. Objects are the CRDT state as crdt.AppendSnapshot wrote it.
package s3snap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/palimpsest-editor/palimpsest/projections"
)

// Store is a snapshot store in one bucket. It is safe for concurrent use.
type Store struct {
	c      *minio.Client
	bucket string
	prefix string
}

// New returns a store in bucket, with keys under prefix (may be ""). The
// bucket must exist.
func New(c *minio.Client, bucket, prefix string) *Store {
	return &Store{c: c, bucket: bucket, prefix: prefix}
}

func (s *Store) key(doc string, seq uint64) string {
	return fmt.Sprintf("%s%s/%020d", s.prefix, doc, seq)
}

// Put implements projections.SnapshotStore.
func (s *Store) Put(ctx context.Context, doc string, seq uint64, state []byte) error {
	_, err := s.c.PutObject(ctx, s.bucket, s.key(doc, seq), bytes.NewReader(state), int64(len(state)),
		minio.PutObjectOptions{ContentType: "application/vnd.palimpsest.crdt-snapshot"})
	if err != nil {
		return fmt.Errorf("s3snap: put %s: %w", s.key(doc, seq), err)
	}
	return nil
}

// versions lists doc's snapshot versions in increasing order.
func (s *Store) versions(ctx context.Context, doc string) ([]uint64, error) {
	dir := s.prefix + doc + "/"
	var out []uint64
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: dir}) {
		if o.Err != nil {
			return nil, fmt.Errorf("s3snap: list %s: %w", dir, o.Err)
		}
		seq, err := strconv.ParseUint(strings.TrimPrefix(o.Key, dir), 10, 64)
		if err != nil {
			continue // Not ours.
		}
		out = append(out, seq)
	}
	return out, nil
}

// Nearest implements projections.SnapshotStore.
func (s *Store) Nearest(ctx context.Context, doc string, atSeq uint64) (uint64, []byte, error) {
	vs, err := s.versions(ctx, doc)
	if err != nil {
		return 0, nil, err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i] > atSeq {
			continue
		}
		obj, err := s.c.GetObject(ctx, s.bucket, s.key(doc, vs[i]), minio.GetObjectOptions{})
		if err != nil {
			return 0, nil, fmt.Errorf("s3snap: get %s: %w", s.key(doc, vs[i]), err)
		}
		data, err := io.ReadAll(obj)
		obj.Close()
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && resp.Code == "NoSuchKey" {
			continue // Pruned meanwhile.
		}
		if err != nil {
			return 0, nil, fmt.Errorf("s3snap: get %s: %w", s.key(doc, vs[i]), err)
		}
		return vs[i], data, nil
	}
	return 0, nil, fmt.Errorf("%w: document %q at %d", projections.ErrNoSnapshot, doc, atSeq)
}

// Prune implements projections.SnapshotStore.
func (s *Store) Prune(ctx context.Context, doc string, keep int) error {
	vs, err := s.versions(ctx, doc)
	if err != nil || len(vs) <= keep {
		return err
	}
	objs := make(chan minio.ObjectInfo, len(vs)-keep)
	for _, v := range vs[:len(vs)-keep] {
		objs <- minio.ObjectInfo{Key: s.key(doc, v)}
	}
	close(objs)
	for e := range s.c.RemoveObjects(ctx, s.bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return fmt.Errorf("s3snap: prune %s: %w", e.ObjectName, e.Err)
		}
	}
	return nil
}
