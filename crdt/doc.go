// Package crdt is LSEQ (Nédelec, Molli, Mostefaoui, Desmontils, DocEng 2013): a sequence CRDT
// whose elements are Unicode code points named by dense identifiers.
//
// The package is a pure state machine: it imports only the standard library, reads no clock,
// draws randomness only from the Rand it is given, and starts no goroutines. Every method
// returns its effects as data — the op to send, the changes to show — and the caller does the
// I/O (persist, then acknowledge, then broadcast).
//
//	a := crdt.New(1, rand.NewPCG(1, 1))
//	b := crdt.New(2, rand.NewPCG(2, 2))
//	op, _ := a.Insert(0, "hello")         // a local edit returns the op to send
//	wire := crdt.AppendOp(nil, &op)       // versioned binary encoding
//	got, _ := crdt.DecodeOp(wire)         // validated; typed errors, never panics
//	changes, _ := b.Apply(got)            // [{Inserted 0 "hello"}]: patch the view
//	snap := b.AppendSnapshot(nil)         // the whole state
//	c, _ := crdt.LoadSnapshot(snap, 3, rand.NewPCG(3, 3))
//
// Identifiers are paths of (digit, site, counter) triples; the base doubles with depth and each
// depth allocates with boundary+ or boundary- by a fixed rule (see alloc). A delete removes its
// identifier: there are no tombstones. Every site numbers its ops 1, 2, 3…, which makes Apply
// idempotent and lets it hold an op that overtook an earlier one of its site, and a delete that
// overtook its insert, until what they wait for arrives.
package crdt
