package projections

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
)

// leases hands out the partitions among the projector processes of one
// projection. Each partition has a lease: a key in a JetStream KV bucket
// whose entries expire LeaseTTL after their last write. A process takes a
// free partition by creating its key (a conditional write that fails if the
// key exists), renews it every TTL/3 with a write conditional on the
// revision it last wrote, and has lost it when that write fails. The
// revision at which it took the lease is its epoch: revisions only grow, so
// a later owner has a higher epoch, and the state store refuses commits
// from a lower epoch than the partition's checkpoint was written with
// (fencing: a paused process that wakes after its lease expired cannot
// overwrite its successor's work).
//
// Balance: each process also keeps a member key alive; a process holds at
// most ceil(partitions / members) partitions and releases the rest, so a
// new process gets its share within a lease period or two.
type leases struct {
	cfg    Config
	bucket *eventlog.Bucket
	parts  int
}

func newLeases(ctx context.Context, cfg Config) (*leases, error) {
	b, err := cfg.Log.OpenBucket(ctx, eventlog.BucketConfig{
		Name:        cfg.Log.Config().Stream + "_leases",
		Description: "Palimpsest projector leases: one key per projection and partition, expiring without renewal.",
		TTL:         cfg.LeaseTTL,
	})
	if err != nil {
		return nil, err
	}
	return &leases{cfg: cfg, bucket: b, parts: cfg.Log.Config().Partitions}, nil
}

func (l *leases) key(p int) string { return l.cfg.Name + ".p." + strconv.Itoa(p) }
func (l *leases) memberKey() string {
	return l.cfg.Name + ".m." + l.cfg.Owner
}

type held struct {
	rev    uint64 // the last revision written
	cancel context.CancelFunc
	done   chan struct{}
}

// run keeps leases and a worker per held partition until ctx ends, then
// stops the workers and releases the leases.
func (l *leases) run(ctx context.Context, work func(ctx context.Context, part int, epoch uint64)) {
	owned := map[int]*held{}
	var mu sync.Mutex // guards owned against workers that end by themselves
	stop := func(p int, h *held) {
		h.cancel()
		<-h.done
		// Release: a conditional delete, so a lease already taken by
		// someone else is left alone.
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = l.bucket.Delete(dctx, l.key(p), h.rev)
		delete(owned, p)
	}
	tick := time.NewTicker(l.cfg.LeaseTTL / 3)
	defer tick.Stop()
	var bo backoff
	for {
		err := l.round(ctx, owned, &mu, stop, work)
		l.cfg.Metrics.setOwned(len(owned))
		if err != nil && ctx.Err() == nil {
			l.cfg.Metrics.error("lease")
			l.cfg.Logger.Warn("projections: lease round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			mu.Lock()
			for p, h := range owned {
				stop(p, h)
			}
			mu.Unlock()
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = l.bucket.Delete(dctx, l.memberKey(), eventlog.NoRevision)
			cancel()
			l.cfg.Metrics.setOwned(0)
			return
		case <-tick.C:
			bo.reset()
		}
	}
}

// round renews held leases, drops lost or surplus ones and takes free ones
// up to this process's share.
func (l *leases) round(ctx context.Context, owned map[int]*held, mu *sync.Mutex, stop func(int, *held),
	work func(ctx context.Context, part int, epoch uint64)) error {
	mu.Lock()
	defer mu.Unlock()
	if _, err := l.bucket.Put(ctx, l.memberKey(), []byte(time.Now().UTC().Format(time.RFC3339)), eventlog.NoRevision); err != nil {
		return err
	}
	members, err := l.bucket.Keys(ctx, l.cfg.Name+".m.")
	if err != nil {
		return err
	}
	share := (l.parts + max(len(members), 1) - 1) / max(len(members), 1)
	var firstErr error
	for p, h := range owned {
		select {
		case <-h.done: // The worker gave up (fenced).
			stop(p, h)
			continue
		default:
		}
		rev, err := l.bucket.Put(ctx, l.key(p), []byte(l.cfg.Owner), h.rev)
		if errors.Is(err, eventlog.ErrWrongSequence) {
			l.cfg.Logger.Warn("projections: lease lost", "partition", p)
			h.rev = eventlog.NoRevision - 1 // Not ours: the release must not delete it.
			stop(p, h)
			continue
		}
		if err != nil {
			firstErr = err // Keep it; the next round renews, well within the TTL.
			continue
		}
		h.rev = rev
	}
	for p, h := range owned {
		if len(owned) <= share {
			break
		}
		stop(p, h)
	}
	if len(owned) >= share {
		return firstErr
	}
	start := rand.IntN(l.parts) // Spread the processes' first picks.
	for i := range l.parts {
		if len(owned) >= share {
			break
		}
		p := (start + i) % l.parts
		if owned[p] != nil {
			continue
		}
		rev, err := l.bucket.Put(ctx, l.key(p), []byte(l.cfg.Owner), 0)
		if errors.Is(err, eventlog.ErrWrongSequence) {
			continue // Someone holds it.
		}
		if err != nil {
			return err
		}
		wctx, cancel := context.WithCancel(ctx)
		h := &held{rev: rev, cancel: cancel, done: make(chan struct{})}
		owned[p] = h
		go func() {
			defer close(h.done)
			work(wctx, p, rev)
		}()
	}
	return firstErr
}
