package gateway_test

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/client"
	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/services/gateway"
)

func crdtRand() crdt.Rand { return rand.NewPCG(1, 2) }

// typeRandomly makes n random edits (mostly inserts) on c.
func typeRandomly(t *testing.T, c *client.Client, rng *rand.Rand, n int) []crdt.Dot {
	t.Helper()
	var dots []crdt.Dot
	for range n {
		l := c.Len()
		var dot crdt.Dot
		var err error
		if l > 0 && rng.IntN(4) == 0 {
			dot, err = c.Delete(rng.IntN(l), 1)
		} else {
			dot, err = c.Insert(rng.IntN(l+1), string(rune('a'+rng.IntN(26))))
		}
		if err != nil {
			t.Errorf("edit: %v", err)
			return dots
		}
		dots = append(dots, dot)
	}
	return dots
}

// Three clients type into one document at once over real WebSockets and a
// real JetStream; all converge to the text of a replay of the log, which
// holds every op exactly once.
func TestThreeClientsConverge(t *testing.T) {
	e := newEnv(t, gateway.Limits{})
	const doc, perClient = "converge", 300
	var clients []*client.Client
	for i := range 3 {
		clients = append(clients, e.client(doc, []string{"ada", "bob", "cy"}[i], client.Config{}))
	}
	ctx := ctxTimeout(t, 60*time.Second)
	for _, c := range clients {
		if err := c.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			typeRandomly(t, c, rand.New(rand.NewPCG(uint64(i), 7)), perClient)
		}()
	}
	wg.Wait()
	for _, c := range clients {
		if err := c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want, seen, last := e.replay(doc)
	if len(seen) != 3*perClient {
		t.Errorf("the log holds %d distinct ops, want %d", len(seen), 3*perClient)
	}
	for i, c := range clients {
		if err := c.WaitSeq(ctx, last); err != nil {
			t.Fatal(err)
		}
		if got := c.Text(); got != want {
			t.Errorf("client %d: %q, the log's replay: %q", i, got, want)
		}
	}
}

// A client goes offline, types 1,000 ops while the server is down, and
// reconnects after the restart: nothing is lost, nothing doubled, and a
// second client that stayed through the restart converges too.
func TestOfflineEditsSurviveRestart(t *testing.T) {
	e := newEnv(t, gateway.Limits{})
	const doc = "offline"
	store := &client.MemoryStore{}
	a := e.client(doc, "ada", client.Config{Store: store})
	b := e.client(doc, "bob", client.Config{})
	ctx := ctxTimeout(t, 90*time.Second)
	rng := rand.New(rand.NewPCG(3, 4))
	online := typeRandomly(t, a, rng, 50)
	typeRandomly(t, b, rand.New(rand.NewPCG(5, 6)), 50)
	if err := a.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}

	e.stop()
	waitFor(t, ctx, "a offline", func() bool { return !a.Connected() })
	offline := typeRandomly(t, a, rng, 1000)
	if a.Pending() != 1000 {
		t.Fatalf("pending %d, want 1000", a.Pending())
	}
	e.start()

	if err := a.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	want, seen, last := e.replay(doc)
	for _, d := range append(online, offline...) {
		if seen[d] != 1 {
			t.Errorf("op %v is in the log %d times, want once", d, seen[d])
		}
	}
	if len(seen) != 1100 {
		t.Errorf("the log holds %d distinct ops, want 1100", len(seen))
	}
	for name, c := range map[string]*client.Client{"a": a, "b": b} {
		if err := c.WaitSeq(ctx, last); err != nil {
			t.Fatal(err)
		}
		if got := c.Text(); got != want {
			t.Errorf("client %s: %q, the log's replay: %q", name, got, want)
		}
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx interface {
	Done() <-chan struct{}
	Err() error
}, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// Pending ops kept in a Store outlive the client process: a new client
// restores them, refuses edits until it has caught up (it cannot know its
// site's next counter before), then sends them; each lands once.
func TestStoreRestoresPendingOps(t *testing.T) {
	e := newEnv(t, gateway.Limits{})
	const doc = "restore"
	ctx := ctxTimeout(t, 60*time.Second)
	store := &client.MemoryStore{}
	a := e.client(doc, "ada", client.Config{Store: store})
	if _, err := a.Insert(0, "online "); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	e.stop()
	waitFor(t, ctx, "a offline", func() bool { return !a.Connected() })
	dots := typeRandomly(t, a, rand.New(rand.NewPCG(9, 9)), 100)
	a.Close() // The process ends with 100 ops pending.

	a2 := e.client(doc, "ada", client.Config{Store: store})
	if a2.Site() != a.Site() || a2.Pending() != 100 {
		t.Fatalf("restored site %d (was %d) with %d pending ops", a2.Site(), a.Site(), a2.Pending())
	}
	if _, err := a2.Insert(0, "too early"); err != client.ErrNotReady {
		t.Fatalf("an edit before catching up: %v, want ErrNotReady", err)
	}
	e.start()
	if err := a2.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a2.Insert(0, "later "); err != nil {
		t.Fatalf("an edit after catching up: %v", err)
	}
	if err := a2.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	want, seen, _ := e.replay(doc)
	for _, d := range dots {
		if seen[d] != 1 {
			t.Errorf("op %v is in the log %d times", d, seen[d])
		}
	}
	if got := a2.Text(); got != want {
		t.Errorf("restored client %q, log %q", got, want)
	}
	if _, pend, _ := store.Load(doc); len(pend) != 0 {
		t.Errorf("the store still holds %d pending ops", len(pend))
	}
}
