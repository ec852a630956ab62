package crdt

import (
	"math"
	"unicode/utf8"
)

// OpKind says what an Op does.
type OpKind uint8

const (
	OpInsert OpKind = 1 // add elements
	OpDelete OpKind = 2 // remove elements
)

// MaxOpElements bounds the elements of one op, so a decoder never allocates without limit.
const MaxOpElements = 1 << 20

// Op is one operation, the unit that travels between replicas and into the log.
//
// An insert adds len(IDs) elements: IDs[i] carries Text's i-th code point, the IDs are strictly
// increasing, and IDs[i]'s origin is (Site, Counter+i), so an insert spends the counters
// Counter..Counter+len(IDs)-1 of its site. A delete removes the elements IDs (strictly
// increasing) and spends the one counter Counter. Every site's ops carry consecutive counters
// from 1, which is what makes applying an op twice the same as once.
type Op struct {
	Kind    OpKind
	Site    SiteID
	Counter uint32
	IDs     []ID
	Text    string // inserts only
}

// Dot is the op's identity: its site and first counter.
func (op *Op) Dot() Dot { return Dot{Site: op.Site, Counter: op.Counter} }

// Span is how many counters the op spends.
func (op *Op) Span() uint32 {
	if op.Kind == OpInsert {
		return uint32(len(op.IDs))
	}
	return 1
}

// IsZero reports whether op is the zero Op, which local edits return when nothing changed.
func (op *Op) IsZero() bool { return op.Kind == 0 && len(op.IDs) == 0 }

// Validate checks everything an op must satisfy on its own, as an *InvalidError. Apply calls
// it; decoders call it too, so a decoded op is always valid.
func (op *Op) Validate() error {
	if op.Kind != OpInsert && op.Kind != OpDelete {
		return invalidf(CodeBadOp, "unknown op kind %d", op.Kind)
	}
	n := len(op.IDs)
	if n == 0 {
		return invalidf(CodeBadOp, "op without elements")
	}
	if n > MaxOpElements {
		return invalidf(CodeTooLarge, "op of %d elements over %d", n, MaxOpElements)
	}
	if op.Counter == 0 || uint64(op.Counter)+uint64(op.Span())-1 > math.MaxUint32 {
		return invalidf(CodeBadOp, "counter %d (span %d) out of range", op.Counter, op.Span())
	}
	for i, id := range op.IDs {
		if err := id.Validate(); err != nil {
			return err
		}
		if i > 0 && op.IDs[i-1] >= id {
			return invalidf(CodeBadOp, "identifiers not strictly increasing at %d", i)
		}
	}
	if op.Kind == OpDelete {
		if op.Text != "" {
			return invalidf(CodeBadOp, "delete carries text")
		}
		for _, id := range op.IDs {
			// A site can only delete what it has seen, and it has seen only its earlier ops.
			if o := id.Origin(); o.Site == op.Site && o.Counter >= op.Counter {
				return invalidf(CodeBadOp, "delete %d:%d of its own later element %d:%d",
					op.Site, op.Counter, o.Site, o.Counter)
			}
		}
		return nil
	}
	if !utf8.ValidString(op.Text) {
		return invalidf(CodeBadText, "insert text is not valid UTF-8")
	}
	if c := utf8.RuneCountInString(op.Text); c != n {
		return invalidf(CodeBadOp, "insert of %d identifiers carries %d code points", n, c)
	}
	for i, id := range op.IDs {
		if o := id.Origin(); o.Site != op.Site || o.Counter != op.Counter+uint32(i) {
			return invalidf(CodeBadOp, "identifier %d has origin %d:%d, want %d:%d",
				i, o.Site, o.Counter, op.Site, op.Counter+uint32(i))
		}
	}
	return nil
}

// ChangeKind says what a Change did to the text.
type ChangeKind uint8

const (
	Inserted ChangeKind = 1
	Deleted  ChangeKind = 2
)

// Change is one edit of the visible text, in code points: Text was inserted at Index, or Text
// was removed from Index. Changes returned together apply in order, each to the text the
// previous one left, so an editor patches its view without diffing.
type Change struct {
	Kind  ChangeKind
	Index int
	Text  string
}
