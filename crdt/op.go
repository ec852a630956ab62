package crdt

import (
	"math"
	"slices"
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
// An insert adds Len() elements: the i-th identifier carries Text's i-th code point, the
// identifiers are strictly increasing, and the i-th one's origin is (Site, Counter+i), so an
// insert spends the counters Counter..Counter+Len()-1 of its site. A delete removes the elements
// named (strictly increasing) and spends the one counter Counter. Every site's ops carry
// consecutive counters from 1, which is what makes applying an op twice the same as once.
//
// The identifiers are held as runs (see Run), the fewest possible, and an op of one element
// holds it without any allocation. Build ops with NewOp or NewOpFromRuns; Doc's edits and
// DecodeOp return them.
type Op struct {
	Kind    OpKind
	Site    SiteID
	Counter uint32
	Text    string // inserts only
	runs    []Run  // the identifiers, when there are two or more
	one     key    // the identifier, when there is exactly one
	// checked is set when the identifiers are known to be well formed and increasing (DecodeOp
	// and Doc's edits make them so): they cannot change, so Validate need not look at them again.
	checked bool
}

// Run is consecutive identifiers of an op: the i-th is Prefix followed by the level
// (Digits[i], Site, Counter+i).
type Run struct {
	Prefix  ID // the levels every identifier of the run begins with; may be empty
	Site    SiteID
	Counter uint32
	Digits  []uint32
}

func (r *Run) key(i int) key {
	return key{string(r.Prefix), level{r.Digits[i], r.Site, r.Counter + uint32(i)}}
}

// single reports whether op holds its one element in op.one rather than in op.runs. Readers
// then see it as a run of their own (see asRun), kept on their stack:
//
//	var one [1]Run
//	var digit [1]uint32
//	runs := op.runs
//	if op.single() {
//		digit[0] = op.one.last.digit
//		one[0] = op.one.asRun(digit[:])
//		runs = one[:]
//	}
func (op *Op) single() bool { return op.runs == nil && !op.one.none() }

// asRun returns the run of the one identifier k, whose last digit digits holds.
func (k key) asRun(digits []uint32) Run {
	return Run{Prefix: ID(k.prefix), Site: k.last.site, Counter: k.last.counter, Digits: digits}
}

// Runs returns a copy of the op's identifiers as runs.
func (op *Op) Runs() []Run {
	if op.single() {
		return []Run{op.one.asRun([]uint32{op.one.last.digit})}
	}
	runs := slices.Clone(op.runs)
	for i := range runs {
		runs[i].Digits = slices.Clone(runs[i].Digits)
	}
	return runs
}

// NewOpFromRuns builds an op from runs. It does not validate: see Op.Validate.
func NewOpFromRuns(kind OpKind, site SiteID, counter uint32, runs []Run, text string) Op {
	op := Op{Kind: kind, Site: site, Counter: counter, Text: text, runs: runs}
	if len(runs) == 1 && len(runs[0].Digits) == 1 {
		op.runs, op.one = nil, runs[0].key(0)
	}
	return op
}

// NewOp builds an op from its identifiers, grouping them into runs. It does not validate: see
// Op.Validate. An identifier too short to have a last level makes a run that Validate refuses.
func NewOp(kind OpKind, site SiteID, counter uint32, ids []ID, text string) Op {
	b := opBuilder{runs: []Run{}}
	for _, id := range ids {
		if len(id) < tripleSize {
			b.runs = append(b.runs, Run{Prefix: id, Digits: []uint32{0}})
			continue
		}
		b.add(keyOf(id))
	}
	return NewOpFromRuns(kind, site, counter, b.runs, text)
}

// opBuilder collects an op's identifiers into runs that share one digits array; an op of one
// element needs no allocation.
type opBuilder struct {
	runs   []Run
	digits []uint32
	single bool
	one    key
}

func newOpBuilder(n int) opBuilder {
	if n == 1 {
		return opBuilder{single: true}
	}
	return opBuilder{runs: make([]Run, 0, 1), digits: make([]uint32, 0, n)}
}

// op returns the op built, from identifiers a Doc made.
func (b *opBuilder) op(kind OpKind, site SiteID, counter uint32, text string) Op {
	return Op{Kind: kind, Site: site, Counter: counter, Text: text, runs: b.runs, one: b.one, checked: true}
}

// add appends k: to the last run when it continues it, else as a new run.
func (b *opBuilder) add(k key) {
	if b.single {
		b.one = k
		return
	}
	if n := len(b.runs); n > 0 {
		r := &b.runs[n-1]
		m := len(r.Digits)
		if k.last.site == r.Site && k.last.counter == r.Counter+uint32(m) &&
			k.last.digit > r.Digits[m-1] && k.prefix == string(r.Prefix) {
			b.digits = append(b.digits, k.last.digit)
			r.Digits = b.digits[len(b.digits)-m-1 : len(b.digits) : len(b.digits)]
			return
		}
	}
	b.digits = append(b.digits, k.last.digit)
	b.runs = append(b.runs, Run{Prefix: ID(k.prefix), Site: k.last.site, Counter: k.last.counter,
		Digits: b.digits[len(b.digits)-1 : len(b.digits) : len(b.digits)]})
}

// addRun appends elements i..i+n-1 of the document's run r.
func (b *opBuilder) addRun(r *run, i, n int) {
	b.add(r.key(i))
	if b.single {
		return
	}
	for _, e := range r.elems[i+1 : i+n] {
		b.digits = append(b.digits, e.digit)
	}
	b.grow(n - 1)
}

// addStretch appends the identifiers prefix + (digits[i], site, counter+i).
func (b *opBuilder) addStretch(prefix string, site SiteID, counter uint32, digits []uint32) {
	b.add(key{prefix, level{digits[0], site, counter}})
	if b.single {
		return
	}
	b.digits = append(b.digits, digits[1:]...)
	b.grow(len(digits) - 1)
}

// grow extends the last run over the m digits appended last.
func (b *opBuilder) grow(m int) {
	if m > 0 {
		r := &b.runs[len(b.runs)-1]
		n := len(b.digits)
		r.Digits = b.digits[n-len(r.Digits)-m : n : n]
	}
}

// Len is the number of elements the op inserts or deletes.
func (op *Op) Len() int {
	if op.runs == nil {
		if op.one.none() {
			return 0
		}
		return 1
	}
	n := 0
	for i := range op.runs {
		n += len(op.runs[i].Digits)
	}
	return n
}

// IDs returns the op's identifiers, in order.
func (op *Op) IDs() []ID {
	ids := make([]ID, 0, op.Len())
	for _, r := range op.Runs() {
		for i := range r.Digits {
			ids = append(ids, r.key(i).id())
		}
	}
	return ids
}

// Dot is the op's identity: its site and first counter.
func (op *Op) Dot() Dot { return Dot{Site: op.Site, Counter: op.Counter} }

// Span is how many counters the op spends.
func (op *Op) Span() uint32 {
	if op.Kind == OpInsert {
		return uint32(op.Len())
	}
	return 1
}

// IsZero reports whether op is the zero Op, which local edits return when nothing changed.
func (op *Op) IsZero() bool { return op.Kind == 0 && op.Len() == 0 }

// Validate checks everything an op must satisfy on its own, as an *InvalidError. Apply calls
// it; decoders call it too, so a decoded op is always valid.
func (op *Op) Validate() error {
	if op.Kind != OpInsert && op.Kind != OpDelete {
		return invalidf(CodeBadOp, "unknown op kind %d", op.Kind)
	}
	if op.single() {
		return op.validateOne()
	}
	runs := op.runs
	n := 0
	var prev key
	for ri := range runs {
		r := &runs[ri]
		if len(r.Digits) == 0 {
			return invalidf(CodeBadOp, "run %d without elements", ri)
		}
		n += len(r.Digits)
		if n > MaxOpElements {
			return invalidf(CodeTooLarge, "op of over %d elements", MaxOpElements)
		}
		if op.checked {
			continue
		}
		if err := validateRun(r); err != nil {
			return err
		}
		if ri > 0 && cmpKeys(prev, r.key(0)) >= 0 {
			return invalidf(CodeBadOp, "identifiers not strictly increasing at run %d", ri)
		}
		prev = r.key(len(r.Digits) - 1)
	}
	if n == 0 {
		return invalidf(CodeBadOp, "op without elements")
	}
	if op.Counter == 0 || uint64(op.Counter)+uint64(op.Span())-1 > math.MaxUint32 {
		return invalidf(CodeBadOp, "counter %d (span %d) out of range", op.Counter, op.Span())
	}
	if op.Kind == OpDelete {
		if op.Text != "" {
			return invalidf(CodeBadOp, "delete carries text")
		}
		for ri := range runs {
			// A site can only delete what it has seen, and it has seen only its earlier ops.
			r := &runs[ri]
			if last := r.Counter + uint32(len(r.Digits)) - 1; r.Site == op.Site && last >= op.Counter {
				return invalidf(CodeBadOp, "delete %d:%d of its own later element %d:%d",
					op.Site, op.Counter, r.Site, last)
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
	next := op.Counter
	for ri := range runs {
		if r := &runs[ri]; r.Site != op.Site || r.Counter != next {
			return invalidf(CodeBadOp, "run %d has origin %d:%d, want %d:%d",
				ri, r.Site, r.Counter, op.Site, next)
		} else {
			next += uint32(len(r.Digits))
		}
	}
	return nil
}

// validateRun checks that every identifier of r is well formed and that they increase.
func validateRun(r *Run) error {
	d, err := validatePrefix(r.Prefix)
	if err != nil {
		return err
	}
	if uint64(r.Counter)+uint64(len(r.Digits))-1 > math.MaxUint32 {
		return invalidf(CodeBadID, "run counters %d+%d over 32 bits", r.Counter, len(r.Digits))
	}
	b := base(d)
	prev := uint32(0)
	for i, g := range r.Digits {
		switch {
		case g == 0:
			return invalidf(CodeBadID, "identifier ends in digit 0")
		case uint64(g) >= b:
			return invalidf(CodeBadID, "digit %d at depth %d out of base %d", g, d, b)
		case i > 0 && g <= prev:
			return invalidf(CodeBadOp, "identifiers not strictly increasing in a run")
		}
		prev = g
	}
	return nil
}

// validatePrefix checks the leading levels of identifiers and returns how many there are.
func validatePrefix(p ID) (int, error) {
	if len(p)%tripleSize != 0 {
		return 0, invalidf(CodeBadID, "identifier prefix of %d bytes", len(p))
	}
	d := p.Depth()
	if d+1 > MaxDepth {
		return 0, invalidf(CodeBadID, "identifier depth %d over %d", d+1, MaxDepth)
	}
	for l := 0; l < d; l++ {
		if uint64(p.digit(l)) >= base(l) {
			return 0, invalidf(CodeBadID, "digit %d at depth %d out of base %d", p.digit(l), l, base(l))
		}
	}
	return d, nil
}

// validateOne is Validate for an op of one element.
func (op *Op) validateOne() error {
	k := op.one
	if !op.checked {
		d, err := validatePrefix(ID(k.prefix))
		if err != nil {
			return err
		}
		switch {
		case k.last.digit == 0:
			return invalidf(CodeBadID, "identifier ends in digit 0")
		case uint64(k.last.digit) >= base(d):
			return invalidf(CodeBadID, "digit %d at depth %d out of base %d", k.last.digit, d, base(d))
		}
	}
	switch {
	case op.Counter == 0:
		return invalidf(CodeBadOp, "counter 0")
	}
	if op.Kind == OpDelete {
		switch {
		case op.Text != "":
			return invalidf(CodeBadOp, "delete carries text")
		case k.last.site == op.Site && k.last.counter >= op.Counter:
			return invalidf(CodeBadOp, "delete %d:%d of its own later element %d:%d",
				op.Site, op.Counter, k.last.site, k.last.counter)
		}
		return nil
	}
	if r, size := utf8.DecodeRuneInString(op.Text); (r == utf8.RuneError && size <= 1) || size != len(op.Text) {
		if !utf8.ValidString(op.Text) {
			return invalidf(CodeBadText, "insert text is not valid UTF-8")
		}
		return invalidf(CodeBadOp, "insert of 1 identifier carries %d code points", utf8.RuneCountInString(op.Text))
	}
	if k.last.site != op.Site || k.last.counter != op.Counter {
		return invalidf(CodeBadOp, "run 0 has origin %d:%d, want %d:%d",
			k.last.site, k.last.counter, op.Site, op.Counter)
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
