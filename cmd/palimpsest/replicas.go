package main

import (
	"fmt"
	"maps"
	"slices"

	"github.com/palimpsest-editor/palimpsest/crdt"
)

// sameState reports, as an error naming the first difference, whether two replicas differ in
// text, identifiers, clock, or what they still hold back. Replicas that have seen the same ops
// must not differ in any of them.
func sameState(a, b *crdt.Doc) error {
	if at, bt := a.Text(), b.Text(); at != bt {
		return fmt.Errorf("texts differ: %d and %d code points", a.Len(), b.Len())
	}
	aIDs, bIDs := ids(a), ids(b)
	if i := firstDifference(aIDs, bIDs); i >= 0 {
		return fmt.Errorf("identifiers differ from position %d", i)
	}
	if !maps.Equal(a.Clock(), b.Clock()) {
		return fmt.Errorf("clocks differ: %v and %v", a.Clock(), b.Clock())
	}
	aOps, aDels := a.Pending()
	bOps, bDels := b.Pending()
	if aOps != bOps || aDels != bDels {
		return fmt.Errorf("held back: %d ops and %d deletes, against %d and %d", aOps, aDels, bOps, bDels)
	}
	return nil
}

func ids(d *crdt.Doc) []crdt.ID {
	out := make([]crdt.ID, 0, d.Len())
	d.IDs(func(id crdt.ID, _ rune) bool {
		out = append(out, id)
		return true
	})
	return out
}

// firstDifference returns the first index where a and b differ, or -1 if they are equal.
func firstDifference(a, b []crdt.ID) int {
	if slices.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
