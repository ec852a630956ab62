package main

import (
	"math/rand/v2"
	"testing"

	"github.com/palimpsest-editor/palimpsest/crdt"
)

// TestNetworkKeepsEachSitesOrder checks the network's promises: no receiver ever holds an op
// back for an earlier op of its site (each link is first in, first out), some messages arrive
// twice, nothing crosses a partition, and drain delivers everything.
func TestNetworkKeepsEachSitesOrder(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		docs := make([]*crdt.Doc, 4)
		for i := range docs {
			docs[i] = crdt.New(crdt.SiteID(i+1), rand.NewPCG(seed, uint64(i)))
		}
		net := newNetwork(rng, docs)
		step := func() {
			for i, d := range docs {
				op, err := randomEdit(rng, d)
				if err != nil {
					t.Fatal(err)
				}
				if !op.IsZero() {
					net.send(i, op)
				}
			}
			if err := net.tick(); err != nil {
				t.Fatal(err)
			}
			for i, d := range docs {
				if held, _ := d.Pending(); held != 0 {
					t.Fatalf("seed %d: replica %d holds %d ops that overtook their site's earlier ops", seed, i+1, held)
				}
			}
		}
		for range 20 {
			step()
		}
		net.partition(2)
		before := docs[0].Clock()[3]
		for range 20 {
			step()
		}
		if got := docs[0].Clock()[3]; got != before {
			t.Fatalf("seed %d: replica 1 applied site 3's ops %d..%d across the partition", seed, before+1, got)
		}
		if err := net.drain(); err != nil {
			t.Fatal(err)
		}
		if net.inFlight() != 0 {
			t.Fatalf("seed %d: %d messages in flight after drain", seed, net.inFlight())
		}
		if net.stats.duplicated == 0 || net.stats.delivered != net.stats.sent+net.stats.duplicated {
			t.Fatalf("seed %d: %+v: want some duplicates, and every message delivered", seed, net.stats)
		}
		if err := converged(docs); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}
