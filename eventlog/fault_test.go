package eventlog_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
)

// TestFaultClusterKillLeader SIGKILLs the stream leader of a 3-node R3
// cluster while four writers append 10,000 ops, then checks on each
// remaining node, and on the killed one after its restart, that every op
// whose append succeeded is in the log exactly once and that all nodes hold
// the same order.
func TestFaultClusterKillLeader(t *testing.T) {
	b, c := cluster(t)
	cfg := b.config()
	cfg.RequestTimeout = 2 * time.Second
	admin := b.open(t, cfg)
	var killed string
	runFault(t, b, cfg, func() {
		ctx := ctxT(t, 10*time.Second)
		info, err := admin.StreamInfo(ctx)
		if err != nil {
			t.Errorf("stream info: %v", err)
			return
		}
		killed = info.Cluster.Leader
		c.Node(killed).Kill(t)
		t.Logf("SIGKILLed the stream leader %s", killed)
	}, func(check func(name, url string)) {
		for _, n := range c.Nodes {
			if n.Name() != killed {
				check(n.Name(), n.URL())
			}
		}
		c.Node(killed).Start(t)
		check(killed+" (restarted)", c.Node(killed).URL())
	})
}

// TestFaultEmbeddedRestart restarts the embedded server while four writers
// append 10,000 ops, with the same checks.
func TestFaultEmbeddedRestart(t *testing.T) {
	b := embedded(t)
	cfg := b.config()
	cfg.RequestTimeout = 2 * time.Second
	runFault(t, b, cfg, func() {
		b.restart(t)
		t.Log("restarted the embedded server")
	}, func(check func(name, url string)) {
		check("embedded", b.url)
	})
}

type opKey struct{ site, counter uint32 }

// runFault appends 10,000 ops from four writers (two appending batches of
// five synchronously, two pipelining single ops), calls fault once 3,000 are
// acknowledged, retries every failed append until it succeeds, then runs
// verify with a check that reads the log through one server.
func runFault(t *testing.T, b *backend, cfg eventlog.Config, fault func(), verify func(check func(name, url string))) {
	const (
		writers   = 4
		perWriter = 2500
		docs      = 4
		chunk     = 5
	)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	docOf := func(counter uint32) string { return fmt.Sprintf("f%d", (int(counter-1)/chunk)%docs) }
	var (
		mu      sync.Mutex
		success = map[opKey]uint64{} // seq, or 0 for a duplicate whose seq the log did not know
		acked   atomic.Int64
		errs    atomic.Int64
	)
	record := func(site uint32, ops []eventlog.Op, res []eventlog.Appended) {
		mu.Lock()
		defer mu.Unlock()
		for i, r := range res {
			k := opKey{site, ops[i].Counter}
			if prev, ok := success[k]; ok && prev != 0 && r.Seq != 0 && prev != r.Seq {
				t.Errorf("op %v acknowledged at %d and at %d", k, prev, r.Seq)
			}
			if r.Seq != 0 || success[k] == 0 {
				success[k] = r.Seq
			}
		}
		acked.Add(int64(len(res)))
	}
	deadline := time.Now().Add(3 * time.Minute)
	retry := func(what string, err error) {
		errs.Add(1)
		if time.Now().After(deadline) {
			panic(fmt.Sprintf("%s: still failing at the deadline: %v", what, err))
		}
		time.Sleep(20 * time.Millisecond) // Backoff before a retry, not an assertion.
	}

	var wg sync.WaitGroup
	for w := range writers {
		site := uint32(w + 1)
		l := b.open(t, cfg)
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		if w < 2 {
			wg.Go(func() { // Synchronous batches of five ops of one document.
				for first := uint32(1); first <= perWriter; first += chunk {
					ops := make([]eventlog.Op, chunk)
					for i := range ops {
						ops[i] = op(site, first+uint32(i))
					}
					for {
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						res, err := l.Append(ctx, docOf(first), eventlog.Any, ops...)
						cancel()
						if err == nil {
							record(site, ops, res)
							break
						}
						retry(fmt.Sprintf("site %d ops %d..", site, first), err)
					}
				}
			})
			continue
		}
		wg.Go(func() { // Pipelined single ops, up to 64 in flight; failed ones are resent in order.
			pending := make([]uint32, 0, perWriter)
			for c := uint32(1); c <= perWriter; c++ {
				pending = append(pending, c)
			}
			for len(pending) > 0 {
				window := 16 + rng.IntN(48)
				type inflight struct {
					c uint32
					f *eventlog.Future
				}
				var fl []inflight
				var failed []uint32
				for _, c := range pending {
					fl = append(fl, inflight{c, l.AppendAsync(docOf(c), op(site, c))})
					if len(fl) >= window {
						f := fl[0]
						fl = fl[1:]
						if res, err := f.f.Result(); err == nil {
							record(site, []eventlog.Op{op(site, f.c)}, res)
						} else {
							failed = append(failed, f.c)
							errs.Add(1)
						}
					}
				}
				for _, f := range fl {
					if res, err := f.f.Result(); err == nil {
						record(site, []eventlog.Op{op(site, f.c)}, res)
					} else {
						failed = append(failed, f.c)
						errs.Add(1)
					}
				}
				pending = failed
				if len(pending) > 0 {
					retry(fmt.Sprintf("site %d: %d ops", site, len(pending)), nil)
				}
			}
		})
	}
	var faultAt int64
	faultDone := make(chan struct{})
	go func() {
		defer close(faultDone)
		for acked.Load() < 3000 {
			time.Sleep(5 * time.Millisecond) // Waiting for the moment to inject the fault.
		}
		faultAt = acked.Load()
		fault()
	}()
	wg.Wait()
	<-faultDone
	t.Logf("fault injected after %d acknowledged ops; %d append errors were retried", faultAt, errs.Load())
	if faultAt >= writers*perWriter {
		t.Fatalf("the fault came after the writes had finished")
	}
	if len(success) != writers*perWriter {
		t.Fatalf("%d ops acknowledged, want %d", len(success), writers*perWriter)
	}

	var reference map[string][]eventlog.Event
	verify(func(name, url string) {
		nb := *b
		nb.url = url
		l := nb.open(t, cfg)
		got := map[string][]eventlog.Event{}
		// A replica may still be catching up: poll until it holds every op.
		eventually(t, 60*time.Second, func() error {
			n := 0
			for d := range docs {
				doc := fmt.Sprintf("f%d", d)
				var evs []eventlog.Event
				err := l.Read(ctxT(t, 30*time.Second), doc, 0, 0, func(e eventlog.Event, err error) error {
					if err != nil {
						return err
					}
					evs = append(evs, e)
					return nil
				})
				if err != nil {
					return err
				}
				got[doc] = evs
				n += len(evs)
			}
			if n < len(success) {
				return fmt.Errorf("node %s has %d of %d events", name, n, len(success))
			}
			return nil
		})
		seen := map[opKey]uint64{}
		for doc, evs := range got {
			for i, e := range evs {
				k := opKey{e.Site, e.Counter}
				if prev, dup := seen[k]; dup {
					t.Errorf("node %s: op %v is in the log twice, at %d and %d", name, k, prev, e.Seq)
				}
				seen[k] = e.Seq
				if _, ok := success[k]; !ok {
					t.Errorf("node %s: op %v at %d was never acknowledged", name, k, e.Seq)
				}
				if docOf(e.Counter) != doc {
					t.Errorf("node %s: op %v in document %s", name, k, doc)
				}
				var prev uint64
				if i > 0 {
					prev = evs[i-1].Seq
				}
				if e.PrevSeq != prev || e.Seq <= prev {
					t.Errorf("node %s: %s event %d: seq %d prev %d, want prev %d", name, doc, i, e.Seq, e.PrevSeq, prev)
				}
			}
		}
		for k, seq := range success {
			at, ok := seen[k]
			if !ok {
				t.Errorf("node %s: acknowledged op %v (seq %d) is missing", name, k, seq)
			} else if seq != 0 && at != seq {
				t.Errorf("node %s: op %v acknowledged at %d is at %d", name, k, seq, at)
			}
		}
		t.Logf("node %s: %d events, each acknowledged op exactly once", name, len(seen))
		if reference == nil {
			reference = got
			return
		}
		for doc, evs := range got {
			ref := reference[doc]
			if len(ref) != len(evs) {
				t.Errorf("node %s: %s has %d events, the first node %d", name, doc, len(evs), len(ref))
				continue
			}
			for i := range evs {
				if evs[i].Seq != ref[i].Seq || evs[i].Site != ref[i].Site || evs[i].Counter != ref[i].Counter {
					t.Errorf("node %s: %s event %d differs from the first node's", name, doc, i)
					break
				}
			}
		}
		t.Logf("node %s: same order as the first node", name)
	})
}
