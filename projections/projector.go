package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
)

// Config configures a Projector. Zero fields take the default named on them.
type Config struct {
	// Log is the event log to project. Required.
	Log *eventlog.Log
	// State keeps the state projection. Required.
	State StateBackend
	// Snapshots, when set, receives a snapshot of a document every
	// SnapshotEvery ops or SnapshotInterval (default 1000 ops, 1 minute),
	// keeping the newest SnapshotRetain of each (default 16; negative: all).
	Snapshots        SnapshotStore
	SnapshotEvery    int
	SnapshotInterval time.Duration
	SnapshotRetain   int
	// ReadModel is upserted after each commit. Default: an in-process
	// MemoryReadModel.
	ReadModel ReadModel
	// Name names the projection's consumers ("projector-<name>-p<k>"), its
	// leases and its dead letters. Default "state".
	Name string
	// Owner names this process in leases. Default host-pid-random.
	Owner string
	// BatchSize is the most events fetched and committed at once (default
	// 16384). CommitInterval is how long a partition collects events before
	// it folds and commits them, unless BatchSize arrive first (default
	// 250 ms): a document touched meanwhile is folded once and its whole
	// state encoded and written once, however many of its ops came, so a
	// longer interval saves CPU per op and adds lag (an event waits at most
	// about one interval, plus the fold and the commit).
	BatchSize      int
	CommitInterval time.Duration
	// LeaseTTL is how long a partition's lease outlives its holder (default
	// 10 s); leases are renewed every third of it.
	LeaseTTL time.Duration
	// CacheDocs and CacheElements bound the documents held in memory
	// (default 4096 documents, 8 million code points).
	CacheDocs     int
	CacheElements int
	// Metrics records the projector's metrics; nil records none.
	Metrics *Metrics
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Fault, when set, is called at each named point of a batch
	// ("before-commit", "after-commit"): crash tests kill the process there.
	Fault func(point string)
	// Now is the clock of snapshot intervals. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.Log == nil || c.State == nil {
		return c, errors.New("projections: Config.Log and Config.State are required")
	}
	if c.Name == "" {
		c.Name = "state"
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		c.Owner = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.Uint32()&0xffff)
	}
	c.BatchSize = cmp.Or(c.BatchSize, 16384)
	c.CommitInterval = cmp.Or(c.CommitInterval, 250*time.Millisecond)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, 10*time.Second)
	c.CacheDocs = cmp.Or(c.CacheDocs, 4096)
	c.CacheElements = cmp.Or(c.CacheElements, 8<<20)
	c.SnapshotEvery = cmp.Or(c.SnapshotEvery, 1000)
	c.SnapshotInterval = cmp.Or(c.SnapshotInterval, time.Minute)
	c.SnapshotRetain = cmp.Or(c.SnapshotRetain, 16)
	if c.ReadModel == nil {
		c.ReadModel = NewMemoryReadModel(0)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Fault == nil {
		c.Fault = func(string) {}
	}
	for _, s := range []string{c.Name, c.Owner} {
		for _, r := range s {
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-') {
				return c, fmt.Errorf("projections: Name and Owner must be [A-Za-z0-9_-]+, got %q", s)
			}
		}
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		return c, fmt.Errorf("projections: BatchSize %d out of 1..100000", c.BatchSize)
	}
	return c, nil
}

// Projector folds the event log into the state projection. Several
// projector processes share the partitions: each partition is folded by the
// holder of its lease only (see lease.go and docs/adr/0005).
//
// Per batch of a partition, in this order: fetch; fold into the documents
// in memory; set poison events aside (dead letters); commit the changed
// documents and the partition's checkpoint in one transaction; ack the
// batch; queue the read-model upserts; write due snapshots. A crash at any
// point is repaired by the next owner: it resumes after the committed
// checkpoint, and an event at or below a document's stored version is
// never applied again.
type Projector struct {
	cfg   Config
	fold  folder
	reads *readWriter

	mu   sync.Mutex
	live StateStore
	gen  int // bumped when the live generation changes
}

// New returns a projector; Run runs it.
func New(cfg Config) (*Projector, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Projector{cfg: cfg, fold: folder{cache: newCache(cfg.CacheDocs, cfg.CacheElements), now: cfg.Now}}
	p.reads = newReadWriter(cfg.ReadModel, cfg.Logger, cfg.Metrics)
	return p, nil
}

// ReadModel returns the read model the projector upserts.
func (p *Projector) ReadModel() ReadModel { return p.cfg.ReadModel }

// Run takes partitions as their leases allow and folds them until ctx ends;
// it then stops every worker, releases its leases and returns ctx's error.
// It returns early only when the lease bucket cannot be opened (its opening
// retries while JetStream is unavailable, until ctx ends).
func (p *Projector) Run(ctx context.Context) error {
	leases, err := newLeases(ctx, p.cfg)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rwg sync.WaitGroup
	rwg.Go(func() { p.reads.run(rctx) })
	leases.run(ctx, p.worker)
	p.reads.flush(2 * time.Second)
	cancel()
	rwg.Wait()
	return ctx.Err()
}

// liveStore returns the live generation's store and its number.
func (p *Projector) liveStore(ctx context.Context) (StateStore, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live == nil {
		s, err := p.cfg.State.Live(ctx)
		if err != nil {
			return nil, 0, err
		}
		p.live = s
	}
	return p.live, p.gen, nil
}

// notLive drops the store of generation gen after a commit found it
// replaced, and empties the cache: the next batch opens the new one.
func (p *Projector) notLive(gen int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen == gen {
		p.live = nil
		p.gen++
		p.fold.cache.purge(-1)
	}
}

// worker folds partition part while this process holds its lease with
// epoch; it returns when ctx ends or when it was fenced (another process
// owns the partition now). Errors are retried with backoff.
func (p *Projector) worker(ctx context.Context, part int, epoch uint64) {
	var bo backoff
	log := p.cfg.Logger.With("projection", p.cfg.Name, "partition", part)
	for ctx.Err() == nil {
		err := p.runPartition(ctx, part, epoch, &bo)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrFenced) {
			log.Warn("projections: fenced; another process owns the partition now", "err", err)
			return
		}
		if !errors.Is(err, ErrNotLive) {
			log.Warn("projections: partition failed; retrying from its checkpoint", "err", err)
		}
		if !bo.wait(ctx) {
			return
		}
	}
}

// stageError says at which stage a batch failed, for the errors metric.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

func (p *Projector) runPartition(ctx context.Context, part int, epoch uint64, bo *backoff) (err error) {
	defer func() {
		var se *stageError
		if errors.As(err, &se) {
			p.cfg.Metrics.error(se.stage)
		}
	}()
	store, gen, err := p.liveStore(ctx)
	if err != nil {
		return &stageError{"load", err}
	}
	cp, cpEpoch, err := store.Checkpoint(ctx, part)
	if err != nil {
		return &stageError{"load", err}
	}
	if cpEpoch > epoch {
		return fmt.Errorf("%w: checkpoint epoch %d above ours %d", ErrFenced, cpEpoch, epoch)
	}
	p.fold.cache.purge(part)
	p.cfg.Logger.Debug("projections: partition starts", "partition", part, "checkpoint", cp, "epoch", epoch)
	cons, err := p.cfg.Log.OpenPartitionConsumer(ctx, p.consumerName(part), part, cp, eventlog.PartitionConsumerConfig{MaxAckPending: 4 * p.cfg.BatchSize})
	if err != nil {
		return &stageError{"fetch", err}
	}
	// The next batch is fetched while this one folds and commits.
	// The fetcher must be gone before this returns: a pull it sent after the
	// consumer is reopened would take events from the new consumer.
	fctx, cancel := context.WithCancel(ctx)
	fetcherDone := make(chan struct{})
	defer func() {
		cancel()
		<-fetcherDone
	}()
	batches := make(chan *eventlog.Batch, 1)
	ferr := make(chan error, 1)
	go func() {
		defer close(fetcherDone)
		defer close(batches)
		for {
			// One pull request per interval: the server holds it until it
			// is full or the interval is over.
			b, err := cons.Fetch(fctx, p.cfg.BatchSize, p.cfg.CommitInterval)
			if err != nil {
				ferr <- err
				return
			}
			select {
			case batches <- b:
			case <-fctx.Done():
				return
			}
		}
	}()
	// One commit is in flight while the next batch folds. The batch is
	// acknowledged, and its read-model upserts and snapshots queued, only
	// after its commit returned.
	var prev *inflight
	finish := func() error {
		if prev == nil {
			return nil
		}
		x := prev
		prev = nil
		<-x.done
		if err := x.err; err != nil {
			p.fold.forget(x.out, x.b.Events)
			if errors.Is(err, ErrNotLive) {
				p.notLive(gen)
				return err
			}
			if errors.Is(err, ErrFenced) {
				return err
			}
			return &stageError{"commit", err}
		}
		p.fold.committed(x.out)
		cp = x.last
		p.cfg.Fault("after-commit")
		if err := x.b.Ack(); err != nil {
			// The commit stands; the events come again and are skipped.
			p.cfg.Metrics.error("ack")
			p.cfg.Logger.Warn("projections: ack failed; the batch will be redelivered and skipped", "partition", part, "err", err)
		}
		p.cfg.Metrics.batchDone(len(x.b.Events), x.out.ops, time.Since(x.start).Seconds())
		bo.reset()
		if len(x.out.docs) > 0 {
			es := make([]ReadEntry, len(x.out.docs))
			for i, d := range x.out.docs {
				es[i] = ReadEntry{Doc: d.Doc, Version: d.Version, Text: d.Text}
			}
			p.reads.enqueue(es)
			p.snapshots(ctx, x.out)
		}
		return nil
	}
	defer func() {
		if prev != nil {
			_ = finish() // Wait for it: its documents must not be folded again meanwhile.
		}
	}()
	for {
		var committed chan struct{}
		if prev != nil {
			committed = prev.done
		}
		var b *eventlog.Batch
		select {
		case <-committed:
			// Ack and publish as soon as the commit returns, not when the
			// next batch arrives.
			if err := finish(); err != nil {
				return err
			}
			continue
		case nb, ok := <-batches:
			if !ok {
				if err := finish(); err != nil {
					return err
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				return &stageError{"fetch", <-ferr}
			}
			b = nb
		}
		ds := b.Events
		p.cfg.Metrics.setLag(p.cfg.Name, part, b.Lag)
		if len(ds) == 0 {
			if err := finish(); err != nil {
				return err
			}
			continue
		}
		start := time.Now()
		out, err := p.fold.fold(ctx, store, part, cp, ds, finish)
		if err != nil {
			p.fold.forget(out, ds)
			if prev != nil {
				if ferr := finish(); ferr != nil {
					return ferr
				}
			}
			var se *stageError
			if errors.As(err, &se) || errors.Is(err, ErrNotLive) || errors.Is(err, ErrFenced) {
				return err
			}
			return &stageError{"load", err}
		}
		if err := finish(); err != nil {
			p.fold.forget(out, ds)
			return err
		}
		for i, e := range out.entries {
			out.docs[i].Rev = e.st.Rev // As the previous commit left it.
		}
		for _, x := range out.poison {
			err := p.cfg.Log.PublishDeadLetter(ctx, eventlog.DeadLetter{
				Consumer: p.consumerPrefix(), Seq: x.d.Seq, Doc: x.d.Doc, Partition: part,
				Reason: x.reason, Code: x.code, Data: x.d.Data,
			})
			if err != nil {
				p.fold.forget(out, ds)
				return &stageError{"deadletter", err}
			}
			p.cfg.Metrics.deadLetter()
			p.cfg.Logger.Warn("projections: poison event set aside", "partition", part, "seq", x.d.Seq, "doc", x.d.Doc, "reason", x.reason)
		}
		last := ds[len(ds)-1].Seq
		c := &Commit{Docs: out.docs, Epoch: epoch, Checkpoints: []Checkpoint{{Partition: part, Seq: last}}}
		p.cfg.Fault("before-commit")
		x := &inflight{b: b, out: out, last: last, start: start, done: make(chan struct{})}
		go func() {
			x.err = store.Commit(ctx, c)
			close(x.done)
		}()
		prev = x
	}
}

// inflight is a batch whose commit is running.
type inflight struct {
	b     *eventlog.Batch
	out   *folded
	last  uint64
	start time.Time
	done  chan struct{} // closed when the commit returned, with err
	err   error
}

// snapshots writes the snapshots that are due. A failure is logged and
// counted; the document's next batch tries again.
func (p *Projector) snapshots(ctx context.Context, out *folded) {
	if p.cfg.Snapshots == nil {
		return
	}
	now := p.cfg.Now()
	for i, e := range out.entries {
		if e.sinceSnap < p.cfg.SnapshotEvery && (e.sinceSnap == 0 || now.Sub(e.lastSnap) < p.cfg.SnapshotInterval) {
			continue
		}
		d := &out.docs[i]
		if err := p.cfg.Snapshots.Put(ctx, d.Doc, d.Version, d.State); err != nil {
			p.cfg.Metrics.error("snapshot")
			p.cfg.Logger.Warn("projections: snapshot failed", "doc", d.Doc, "version", d.Version, "err", err)
			continue
		}
		e.sinceSnap, e.lastSnap = 0, now
		if p.cfg.SnapshotRetain > 0 {
			if err := p.cfg.Snapshots.Prune(ctx, d.Doc, p.cfg.SnapshotRetain); err != nil {
				p.cfg.Metrics.error("snapshot")
				p.cfg.Logger.Warn("projections: snapshot retention failed", "doc", d.Doc, "err", err)
			}
		}
	}
}

func (p *Projector) consumerPrefix() string { return "projector-" + p.cfg.Name }

func (p *Projector) consumerName(part int) string {
	return p.consumerPrefix() + "-p" + strconv.Itoa(part)
}

// jitter returns a random duration in [0, n) nanoseconds (0 when n <= 0).
func jitter(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return rand.Int64N(n)
}
