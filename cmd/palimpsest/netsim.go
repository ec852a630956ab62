package main

import (
	"fmt"
	"math/rand/v2"

	"github.com/palimpsest-editor/palimpsest/crdt"
)

// network carries ops between replicas the way a bad network would: each message is delayed
// by a random number of ticks, some are sent twice, and a partition holds back messages between
// its sides until it heals. Each link (sender to receiver) is first in, first out, so every
// receiver sees each site's ops in that site's order; ops of different sites arrive in any
// order. All randomness comes from rng, so a seed replays a run.
type network struct {
	rng   *rand.Rand
	now   int
	docs  []*crdt.Doc
	links [][][]message // links[to][from]: in flight, oldest first
	side  []int         // replicas talk only to replicas on the same side
	stats netStats
}

type message struct {
	op  crdt.Op
	due int // tick from which it may be delivered
}

type netStats struct {
	sent, duplicated, delivered int
}

const (
	maxDelay      = 6 // ticks a message may wait
	duplicateRate = 8 // one message in duplicateRate is sent twice
)

func newNetwork(rng *rand.Rand, docs []*crdt.Doc) *network {
	n := &network{rng: rng, docs: docs, links: make([][][]message, len(docs)), side: make([]int, len(docs))}
	for i := range n.links {
		n.links[i] = make([][]message, len(docs))
	}
	return n
}

// send queues op from replica `from` to every other replica.
func (n *network) send(from int, op crdt.Op) {
	for to := range n.docs {
		if to == from {
			continue
		}
		n.stats.sent++
		n.enqueue(to, from, op)
		if n.rng.IntN(duplicateRate) == 0 {
			n.stats.duplicated++
			n.enqueue(to, from, op)
		}
	}
}

// enqueue appends to the link with a random delay. Links deliver from their head only, so a
// message that drew a short delay still waits for the ones ahead of it.
func (n *network) enqueue(to, from int, op crdt.Op) {
	due := n.now + 1 + n.rng.IntN(maxDelay)
	n.links[to][from] = append(n.links[to][from], message{op: op, due: due})
}

// partition puts replicas [0, k) on one side and the rest on the other.
func (n *network) partition(k int) {
	for i := range n.side {
		n.side[i] = min(i/k, 1)
	}
}

// heal lets every replica reach every other again.
func (n *network) heal() { clear(n.side) }

// tick advances time by one and delivers every message that is due and not cut off, visiting
// the links in a random order.
func (n *network) tick() error {
	n.now++
	count := len(n.docs)
	for _, k := range n.rng.Perm(count * count) {
		to, from := k/count, k%count
		if err := n.deliverDue(to, from); err != nil {
			return err
		}
	}
	return nil
}

// deliverDue applies the messages at the head of the link from `from` to `to` that are due,
// stopping at the first that is not.
func (n *network) deliverDue(to, from int) error {
	q := n.links[to][from]
	if n.side[to] != n.side[from] {
		return nil
	}
	for len(q) > 0 && q[0].due <= n.now {
		m := q[0]
		q = q[1:]
		if _, err := n.docs[to].Apply(m.op); err != nil {
			return fmt.Errorf("replica %d applying op %d:%d from replica %d: %w", to+1, m.op.Site, m.op.Counter, from+1, err)
		}
		n.stats.delivered++
	}
	n.links[to][from] = q
	return nil
}

// inFlight counts the messages not yet delivered.
func (n *network) inFlight() int {
	total := 0
	for _, row := range n.links {
		for _, q := range row {
			total += len(q)
		}
	}
	return total
}

// drain heals the network and ticks until nothing is in flight.
func (n *network) drain() error {
	n.heal()
	for n.inFlight() > 0 {
		if err := n.tick(); err != nil {
			return err
		}
	}
	return nil
}
