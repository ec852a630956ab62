package crdt

import (
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// Doc is one replica of an LSEQ sequence of code points. It is not safe for concurrent use.
//
// Local edits (Insert, Delete) change the replica and return the op to send to the others;
// Apply folds in a remote op and returns what changed. Replicas that have applied the same ops,
// in any order that keeps each site's order, and with duplicates, hold the same identifiers and
// the same text.
type Doc struct {
	site     SiteID
	rng      Rand
	boundary uint64
	elems    tree
	clock    map[SiteID]uint32 // highest counter applied, per site
	held     map[SiteID][]Op   // ops that came before their site's earlier ops, by Counter
	doomed   map[Dot]ID        // deletes that came before the insert they delete
}

// Option tunes a Doc.
type Option func(*Doc)

// WithBoundary sets LSEQ's boundary (default DefaultBoundary), clamped to [1, 32].
func WithBoundary(b int) Option {
	return func(d *Doc) { d.boundary = uint64(min(max(b, 1), 32)) }
}

// New returns an empty document edited locally as site, drawing allocation randomness from rng.
func New(site SiteID, rng Rand, opts ...Option) *Doc {
	d := &Doc{
		site:     site,
		rng:      rng,
		boundary: DefaultBoundary,
		clock:    map[SiteID]uint32{},
		held:     map[SiteID][]Op{},
		doomed:   map[Dot]ID{},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Site is the site this replica edits as.
func (d *Doc) Site() SiteID { return d.site }

// Len is the number of code points.
func (d *Doc) Len() int { return d.elems.len() }

// Text returns the document's text.
func (d *Doc) Text() string {
	var sb strings.Builder
	sb.Grow(d.Len())
	d.elems.each(func(_ ID, r rune) bool {
		sb.WriteRune(r)
		return true
	})
	return sb.String()
}

// IDAt returns the identifier of the code point at pos, 0 <= pos < Len, in O(log n).
func (d *Doc) IDAt(pos int) (ID, error) {
	if pos < 0 || pos >= d.Len() {
		return "", invalidf(CodeRange, "position %d outside [0,%d)", pos, d.Len())
	}
	id, _ := d.elems.at(pos)
	return id, nil
}

// IndexOf returns the position of id, and false when the document does not hold it, in O(log n).
func (d *Doc) IndexOf(id ID) (int, bool) { return d.elems.search(id) }

// IDs calls f with every identifier and its code point, in document order, until f returns false.
func (d *Doc) IDs(f func(ID, rune) bool) { d.elems.each(f) }

// Clock returns, per site, the highest counter this replica has applied (a version vector).
func (d *Doc) Clock() map[SiteID]uint32 {
	c := make(map[SiteID]uint32, len(d.clock))
	for s, n := range d.clock {
		c[s] = n
	}
	return c
}

// Pending reports how many ops wait for an earlier op of their site, and how many deletes wait
// for the insert they delete.
func (d *Doc) Pending() (heldOps, heldDeletes int) {
	for _, h := range d.held {
		heldOps += len(h)
	}
	return heldOps, len(d.doomed)
}

// Insert inserts text at code-point position pos and returns the op to send. Empty text
// returns the zero Op. On error the document is unchanged.
func (d *Doc) Insert(pos int, text string) (Op, error) {
	if pos < 0 || pos > d.Len() {
		return Op{}, invalidf(CodeRange, "insert at %d outside [0,%d]", pos, d.Len())
	}
	if !utf8.ValidString(text) {
		return Op{}, invalidf(CodeBadText, "insert text is not valid UTF-8")
	}
	n := utf8.RuneCountInString(text)
	if n == 0 {
		return Op{}, nil
	}
	if n > MaxOpElements {
		return Op{}, invalidf(CodeTooLarge, "insert of %d code points over %d", n, MaxOpElements)
	}
	first := d.clock[d.site] + 1
	if uint64(first)+uint64(n)-1 > math.MaxUint32 {
		return Op{}, invalidf(CodeExhausted, "site %d has no counters left", d.site)
	}
	var leaf *node
	var idx int
	var prev, next ID
	if d.elems.root != nil {
		leaf, idx = d.elems.gapAt(pos)
		prev, next = before(leaf, idx), after(leaf, idx)
	}
	ids := make([]ID, n)
	for i := range ids {
		id, err := alloc(prev, next, d.site, first+uint32(i), d.boundary, d.rng)
		if err != nil {
			return Op{}, err
		}
		ids[i], prev = id, id
	}
	i := 0
	for _, r := range text {
		leaf, idx = d.elems.insert(leaf, idx, ids[i], r)
		idx++
		i++
	}
	d.clock[d.site] = first + uint32(n) - 1
	return Op{Kind: OpInsert, Site: d.site, Counter: first, IDs: ids, Text: text}, nil
}

// Delete removes n code points from position pos and returns the op to send. n == 0 returns
// the zero Op. On error the document is unchanged.
func (d *Doc) Delete(pos, n int) (Op, error) {
	if pos < 0 || n < 0 || pos+n > d.Len() {
		return Op{}, invalidf(CodeRange, "delete [%d,%d) outside [0,%d)", pos, pos+n, d.Len())
	}
	if n == 0 {
		return Op{}, nil
	}
	if n > MaxOpElements {
		return Op{}, invalidf(CodeTooLarge, "delete of %d code points over %d", n, MaxOpElements)
	}
	if d.clock[d.site] == math.MaxUint32 {
		return Op{}, invalidf(CodeExhausted, "site %d has no counters left", d.site)
	}
	ids := make([]ID, n)
	for i := range ids {
		ids[i], _ = d.elems.remove(d.elems.elemAt(pos))
	}
	d.clock[d.site]++
	return Op{Kind: OpDelete, Site: d.site, Counter: d.clock[d.site], IDs: ids}, nil
}

// Apply folds a remote op into the replica and returns what changed in the text.
//
// An op already applied changes nothing. An op that comes before an earlier op of its site is
// held and applied, with its effects returned, by the Apply call that delivers the missing op.
// A delete of an element whose insert has not arrived is remembered, and that insert then
// adds nothing. An invalid op returns an *InvalidError and changes nothing.
func (d *Doc) Apply(op Op) ([]Change, error) {
	if err := op.Validate(); err != nil {
		return nil, err
	}
	last := d.clock[op.Site]
	end := op.Counter + op.Span() - 1
	switch {
	case end <= last:
		return nil, nil // a duplicate
	case op.Counter <= last:
		return nil, invalidf(CodeBadOp, "op %d:%d..%d overlaps counters already applied up to %d",
			op.Site, op.Counter, end, last)
	case op.Counter > last+1:
		d.hold(op)
		return nil, nil
	}
	var cs changes
	d.apply(&op, &cs)
	for len(d.held) > 0 {
		h := d.held[op.Site]
		if len(h) == 0 || h[0].Counter > d.clock[op.Site]+1 {
			break
		}
		next := h[0]
		d.held[op.Site] = h[1:]
		if len(h) == 1 {
			delete(d.held, op.Site)
		}
		if next.Counter == d.clock[op.Site]+1 {
			d.apply(&next, &cs)
		}
	}
	return cs.done(), nil
}

// hold keeps op until its site's earlier ops arrive; a second copy is dropped.
func (d *Doc) hold(op Op) {
	h := d.held[op.Site]
	i, found := slices.BinarySearchFunc(h, op.Counter, func(o Op, c uint32) int {
		return int(int64(o.Counter) - int64(c))
	})
	if !found {
		d.held[op.Site] = slices.Insert(h, i, op)
	}
}

// apply folds a valid op whose Counter follows its site's clock.
func (d *Doc) apply(op *Op, cs *changes) {
	if op.Kind == OpInsert {
		i := 0
		for _, r := range op.Text {
			id := op.IDs[i]
			dot := Dot{Site: op.Site, Counter: op.Counter + uint32(i)}
			i++
			if len(d.doomed) > 0 {
				if _, ok := d.doomed[dot]; ok {
					delete(d.doomed, dot)
					continue
				}
			}
			var leaf *node
			var idx, pos int
			if d.elems.root != nil {
				var found bool
				if leaf, idx, found = d.elems.find(id); found {
					continue
				}
				pos = d.elems.start(leaf) + idx
			}
			d.elems.insert(leaf, idx, id, r)
			cs.add(Inserted, pos, r)
		}
	} else {
		for _, id := range op.IDs {
			o := id.Origin()
			if d.clock[o.Site] < o.Counter {
				d.doomed[o] = id
				continue
			}
			if d.elems.root == nil {
				continue
			}
			if leaf, idx, found := d.elems.find(id); found {
				pos := d.elems.start(leaf) + idx
				_, r := d.elems.remove(leaf, idx)
				cs.add(Deleted, pos, r)
			}
		}
	}
	d.clock[op.Site] = op.Counter + op.Span() - 1
}

// changes accumulates Changes, merging an insert or delete that continues the previous one.
// A one-code-point change costs no allocation for its text; longer ones are built in buf.
type changes struct {
	list  []Change
	buf   []byte // the last change's text, once it has more than one code point
	multi bool   // whether buf holds the last change's text
	count int    // code points in the last change
}

// asciiStrings holds the one-byte strings, so a typed character needs no allocation.
var asciiStrings = func() (t [utf8.RuneSelf]string) {
	for i := range t {
		t[i] = string(rune(i))
	}
	return t
}()

func runeString(r rune) string {
	if r < utf8.RuneSelf {
		return asciiStrings[r]
	}
	return string(r)
}

func (c *changes) add(kind ChangeKind, pos int, r rune) {
	if n := len(c.list); n > 0 {
		last := &c.list[n-1]
		if last.Kind == kind && ((kind == Inserted && pos == last.Index+c.count) ||
			(kind == Deleted && pos == last.Index)) {
			if !c.multi {
				c.buf = append(c.buf[:0], last.Text...)
				c.multi = true
			}
			c.buf = utf8.AppendRune(c.buf, r)
			c.count++
			return
		}
		c.finish()
	}
	c.list = append(c.list, Change{Kind: kind, Index: pos, Text: runeString(r)})
	c.count = 1
}

// finish gives the last change its full text.
func (c *changes) finish() {
	if c.multi {
		c.list[len(c.list)-1].Text = string(c.buf)
		c.multi = false
	}
}

func (c *changes) done() []Change {
	if len(c.list) > 0 {
		c.finish()
	}
	return c.list
}

// before returns the identifier just before gap idx of leaf l, or "" at the beginning.
func before(l *node, idx int) ID {
	switch {
	case idx > 0:
		return l.ids[idx-1]
	case l.prev != nil:
		return l.prev.last()
	}
	return ""
}

// after returns the identifier just after gap idx of leaf l, or "" at the end.
func after(l *node, idx int) ID {
	switch {
	case idx < len(l.ids):
		return l.ids[idx]
	case l.next != nil:
		return l.next.ids[0]
	}
	return ""
}
