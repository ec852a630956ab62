// Package kvstate is the JetStream KV adapter of the state projection
// (projections.StateBackend), the embedded default.
//
// Layout: generation N is the bucket <stream>_state_gN, with one key a
// document, "d.<doc>" (projections.AppendDocState: version, ops, time,
// author, text, CRDT state, all in one entry), and one a partition,
// "cp.<p>" (sequence and epoch). The bucket <stream>_projections holds the
// pointer "state.live" (the live generation) and "state.next" (the last
// generation number handed out).
//
// Atomicity without transactions: each document's entry is self-contained
// and written atomically, conditional on the revision it was loaded at
// (optimistic concurrency: a write from a writer that did not see the latest
// entry fails, which fences a stale owner). The partition checkpoints are
// written only after every document of the commit is stored, also
// conditionally. A crash in between leaves documents ahead of their
// partition's checkpoint, never behind: the events between are delivered
// again and skipped by each document's version. Commit first reads the live
// pointer and returns ErrNotLive if it moved; a Promote that lands during a
// commit makes that commit's writes go to the retired generation, and the
// projector finds out on its next commit and resumes from the new
// generation's checkpoints, so nothing is lost.
//
// Limit: an entry is one JetStream message, so a document's text plus CRDT
// state must fit the server's max_payload (1 MiB by default; raise it for
// larger documents, or use Postgres).
package kvstate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/projections"
)

// Backend is the state projection in JetStream KV buckets. It is safe for
// concurrent use.
type Backend struct {
	log    *eventlog.Log
	prefix string
	meta   *eventlog.Bucket
}

const (
	keyLive = "state.live"
	keyNext = "state.next"
)

// Open opens (creating if needed) the projection's buckets on log's server.
func Open(ctx context.Context, log *eventlog.Log) (*Backend, error) {
	prefix := log.Config().Stream
	meta, err := log.OpenBucket(ctx, eventlog.BucketConfig{Name: prefix + "_projections",
		Description: "Palimpsest projection pointers: which generation of each projection is live."})
	if err != nil {
		return nil, err
	}
	return &Backend{log: log, prefix: prefix, meta: meta}, nil
}

func (b *Backend) bucketName(gen uint64) string {
	return b.prefix + "_state_g" + strconv.FormatUint(gen, 10)
}

func (b *Backend) open(ctx context.Context, gen uint64) (*Store, error) {
	bk, err := b.log.OpenBucket(ctx, eventlog.BucketConfig{Name: b.bucketName(gen),
		Description: "Palimpsest state projection, generation " + strconv.FormatUint(gen, 10)})
	if err != nil {
		return nil, err
	}
	return &Store{b: b, gen: gen, bucket: bk}, nil
}

func (b *Backend) liveGen(ctx context.Context) (gen, rev uint64, err error) {
	v, rev, err := b.meta.Get(ctx, keyLive)
	if err != nil || rev == 0 {
		return 0, rev, err
	}
	gen, err = strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("kvstate: live pointer %q: %w", v, err)
	}
	return gen, rev, nil
}

// Live implements projections.StateBackend; the first call creates
// generation 1 and makes it live.
func (b *Backend) Live(ctx context.Context) (projections.StateStore, error) {
	for {
		gen, _, err := b.liveGen(ctx)
		if err != nil {
			return nil, err
		}
		if gen != 0 {
			return b.open(ctx, gen)
		}
		s, err := b.fresh(ctx)
		if err != nil {
			return nil, err
		}
		_, err = b.meta.Put(ctx, keyLive, []byte(strconv.FormatUint(s.gen, 10)), 0)
		if errors.Is(err, eventlog.ErrWrongSequence) {
			continue // Another process made one live first.
		}
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// Fresh implements projections.StateBackend.
func (b *Backend) Fresh(ctx context.Context) (projections.StateStore, error) {
	return b.fresh(ctx)
}

func (b *Backend) fresh(ctx context.Context) (*Store, error) {
	for {
		v, rev, err := b.meta.Get(ctx, keyNext)
		if err != nil {
			return nil, err
		}
		var next uint64 = 1
		if rev != 0 {
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("kvstate: %s %q: %w", keyNext, v, err)
			}
			next = n + 1
		}
		_, err = b.meta.Put(ctx, keyNext, []byte(strconv.FormatUint(next, 10)), rev)
		if errors.Is(err, eventlog.ErrWrongSequence) {
			continue
		}
		if err != nil {
			return nil, err
		}
		_ = b.log.DeleteBucket(ctx, b.bucketName(next)) // Left over from a lost pointer, if any.
		return b.open(ctx, next)
	}
}

// Promote implements projections.StateBackend: one write of the pointer key.
func (b *Backend) Promote(ctx context.Context, s projections.StateStore) error {
	st, ok := s.(*Store)
	if !ok || st.b != b {
		return errors.New("kvstate: Promote needs a store of this backend")
	}
	_, err := b.meta.Put(ctx, keyLive, []byte(strconv.FormatUint(st.gen, 10)), eventlog.NoRevision)
	return err
}

// Store is one generation of the state projection.
type Store struct {
	b      *Backend
	gen    uint64
	bucket *eventlog.Bucket
}

// Generation is the store's generation number.
func (s *Store) Generation() uint64 { return s.gen }

func docKey(doc string) string { return "d." + doc }
func cpKey(p int) string       { return "cp." + strconv.Itoa(p) }

// Load implements projections.StateStore; it reads up to 16 entries at
// once.
func (s *Store) Load(ctx context.Context, docs []string) (map[string]projections.DocState, error) {
	out := make(map[string]projections.DocState, len(docs))
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, doc := range docs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			v, rev, err := s.bucket.Get(ctx, docKey(doc))
			var d projections.DocState
			if err == nil && rev != 0 {
				if d, err = projections.DecodeDocState(v); err != nil {
					err = fmt.Errorf("kvstate: document %q: %w", doc, err)
				}
				d.Doc, d.Rev = doc, rev
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && first == nil:
				first = err
			case err == nil && rev != 0:
				out[doc] = d
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, nil
}

func (s *Store) checkpoint(ctx context.Context, p int) (seq, epoch, rev uint64, err error) {
	v, rev, err := s.bucket.Get(ctx, cpKey(p))
	if err != nil || rev == 0 {
		return 0, 0, rev, err
	}
	seq, n := binary.Uvarint(v)
	epoch, m := binary.Uvarint(v[max(n, 0):])
	if n <= 0 || m <= 0 {
		return 0, 0, 0, fmt.Errorf("kvstate: checkpoint of partition %d is malformed", p)
	}
	return seq, epoch, rev, nil
}

// Checkpoint implements projections.StateStore.
func (s *Store) Checkpoint(ctx context.Context, p int) (uint64, uint64, error) {
	seq, epoch, _, err := s.checkpoint(ctx, p)
	return seq, epoch, err
}

// Commit implements projections.StateStore; see the package doc for what is
// atomic.
func (s *Store) Commit(ctx context.Context, c *projections.Commit) error {
	live, _, err := s.b.liveGen(ctx)
	if err != nil {
		return err
	}
	if live > s.gen {
		return fmt.Errorf("%w: generation %d, live is %d", projections.ErrNotLive, s.gen, live)
	}
	type cpw struct {
		seq, rev uint64
	}
	cps := make([]cpw, len(c.Checkpoints))
	for i, cp := range c.Checkpoints {
		seq, epoch, rev, err := s.checkpoint(ctx, cp.Partition)
		if err != nil {
			return err
		}
		if epoch > c.Epoch {
			return fmt.Errorf("%w: partition %d has epoch %d, ours is %d", projections.ErrFenced, cp.Partition, epoch, c.Epoch)
		}
		cps[i] = cpw{seq: max(seq, cp.Seq), rev: rev}
	}
	if len(c.Docs) > 0 {
		ws := make([]eventlog.Write, len(c.Docs))
		for i := range c.Docs {
			d := &c.Docs[i]
			ws[i] = eventlog.Write{Key: docKey(d.Doc), Value: projections.AppendDocState(nil, d), Revision: d.Rev}
		}
		revs, err := s.bucket.PutMany(ctx, ws)
		if errors.Is(err, eventlog.ErrWrongSequence) {
			return fmt.Errorf("%w: %w", projections.ErrFenced, err)
		}
		if err != nil {
			return err
		}
		for i := range c.Docs {
			c.Docs[i].Rev = revs[i]
		}
	}
	if len(cps) > 0 {
		ws := make([]eventlog.Write, len(cps))
		for i, cp := range cps {
			v := binary.AppendUvarint(nil, cp.seq)
			v = binary.AppendUvarint(v, c.Epoch)
			ws[i] = eventlog.Write{Key: cpKey(c.Checkpoints[i].Partition), Value: v, Revision: cp.rev}
		}
		if _, err := s.bucket.PutMany(ctx, ws); err != nil {
			if errors.Is(err, eventlog.ErrWrongSequence) {
				return fmt.Errorf("%w: %w", projections.ErrFenced, err)
			}
			return err
		}
	}
	return nil
}
