package crdt

import "slices"

// The document's elements live in a counted B+tree ordered by identifier. Leaves hold runs:
// elements whose identifiers share every level but the last and whose last levels have one
// site and consecutive counters, which is what typing produces. A run stores its prefix once
// and then 8 bytes an element (last digit, code point), so a typed character costs no
// allocation and no identifier string. Every internal node keeps, per child, its element count
// (for position lookups) and its first identifier (for identifier lookups), so both directions
// cost O(log n). Leaves are linked in order, every node knows its parent, and the tree remembers
// the leaf it touched last (the finger): editing is local, so most lookups end in that leaf.

const (
	leafCap  = 32  // runs a leaf holds before it splits
	innerCap = 32  // children an internal node holds before it splits
	runCap   = 256 // elements a run grows to before a new run starts
)

type node struct {
	parent *node
	idx    int // index in parent.children
	// Internal nodes.
	children []*node
	counts   []int // counts[i]: elements under children[i]
	firsts   []key // firsts[i]: the first identifier under children[i]
	// Leaves: never empty while in the tree.
	runs       []run
	n          int // elements in runs
	prev, next *node
	leaf       bool
}

func newLeaf() *node { return &node{leaf: true, runs: make([]run, 0, leafCap+1)} }

func (n *node) first() key {
	if n.leaf {
		return n.runs[0].key(0)
	}
	return n.firsts[0]
}

func (n *node) size() int {
	if n.leaf {
		return n.n
	}
	s := 0
	for _, c := range n.counts {
		s += c
	}
	return s
}

// reindex records in children[from:] their indexes.
func (n *node) reindex(from int) {
	for j := from; j < len(n.children); j++ {
		n.children[j].idx = j
	}
}

// elemIn returns the run and index of the element at offset off < n.n of leaf n.
func (n *node) elemIn(off int) (int, int) {
	for ri := range n.runs {
		if l := len(n.runs[ri].elems); off < l {
			return ri, off
		} else {
			off -= l
		}
	}
	panic("crdt: offset past the leaf")
}

// gapIn returns the gap at offset off <= n.n of leaf n as (run, index <= len(run)); between
// two runs it picks the end of the left one.
func (n *node) gapIn(off int) (int, int) {
	for ri := range n.runs {
		if l := len(n.runs[ri].elems); off <= l {
			return ri, off
		} else {
			off -= l
		}
	}
	panic("crdt: offset past the leaf")
}

// offsetOf returns the offset in leaf n of element i of run ri.
func (n *node) offsetOf(ri, i int) int {
	for _, r := range n.runs[:ri] {
		i += len(r.elems)
	}
	return i
}

// tree is the counted B+tree. The zero value is an empty tree.
type tree struct {
	root   *node
	n      int
	finger *node // the leaf last touched
	// fingerStart is finger's first position. Every change goes through the leaf it changes,
	// which becomes the finger, so nothing before the finger changes while it stays one.
	fingerStart int
	// hint is the gap the last change left, at position hintPos: after the elements inserted
	// last, or where the elements removed last were (l == nil when unknown). Typing and
	// backspacing look here first.
	hint    spot
	hintPos int
	order   prefixOrder // the last two prefixes cmpNear compared
}

// prefixOrder is how identifiers with prefix a order against identifiers with prefix b, a
// different prefix: c when the prefixes decide it, else (one prefix extends the other) by the
// shorter key's last level against lv, the longer prefix's level there.
type prefixOrder struct {
	a, b string
	c    int
	lv   level
}

// cmpNear is cmpKeys for keys near the last change, which are compared again and again with
// the same prefixes (typing before the same element, a remote run applied in pieces): how
// their prefixes order is remembered. Strings do not change, so it never goes stale.
func (t *tree) cmpNear(a, b key) int {
	if a.prefix == b.prefix {
		return a.last.cmp(b.last)
	}
	o := &t.order
	if o.a != a.prefix || o.b != b.prefix {
		n := min(len(a.prefix), len(b.prefix))
		o.a, o.b, o.c = a.prefix, b.prefix, cmpBytes(a.prefix[:n], b.prefix[:n])
		switch {
		case o.c != 0:
		case len(a.prefix) < len(b.prefix):
			o.lv = levelOf(b.prefix[n:])
		default:
			o.lv = levelOf(a.prefix[n:])
		}
	}
	switch {
	case o.c != 0:
		return o.c
	case len(a.prefix) < len(b.prefix):
		if c := a.last.cmp(o.lv); c != 0 {
			return c
		}
		return -1
	}
	if c := o.lv.cmp(b.last); c != 0 {
		return c
	}
	return 1
}

// spot is an element of the tree, or a gap when i == len(runs[ri].elems).
type spot struct {
	l     *node
	ri, i int
}

func (t *tree) len() int { return t.n }

// leafAt returns the leaf holding position pos, 0 <= pos < len, and pos's offset in it; with gap
// set, 0 <= pos <= len, and at a boundary between leaves it picks the end of the left one.
func (t *tree) leafAt(pos int, gap bool) (*node, int) {
	if f := t.finger; f != nil {
		off := pos - t.fingerStart
		if off >= 0 && off < f.n || gap && off > 0 && off <= f.n {
			return f, off
		}
	}
	n := t.root
	for !n.leaf {
		i := 0
		if gap {
			for i < len(n.counts)-1 && pos > n.counts[i] {
				pos -= n.counts[i]
				i++
			}
		} else {
			for pos >= n.counts[i] {
				pos -= n.counts[i]
				i++
			}
		}
		n = n.children[i]
	}
	return n, pos
}

// elemAt returns the element at position pos, 0 <= pos < len.
func (t *tree) elemAt(pos int) spot {
	if h := t.hint; h.l != nil {
		switch {
		case pos == t.hintPos-1:
			return h.prev() // backspacing
		case pos == t.hintPos && pos < t.n:
			return h.next() // deleting forwards
		}
	}
	l, off := t.leafAt(pos, false)
	ri, i := l.elemIn(off)
	return spot{l, ri, i}
}

// runsSpanned returns how many runs the n elements from element s on touch; they must exist.
func (t *tree) runsSpanned(s spot, n int) int {
	c := 0
	for l, ri, i := s.l, s.ri, s.i; n > 0; i = 0 {
		n -= len(l.runs[ri].elems) - i
		c++
		if ri++; ri == len(l.runs) {
			l, ri = l.next, 0
		}
	}
	return c
}

// gapAt returns the gap where an element inserted at position pos goes, 0 <= pos <= len. The
// tree must not be empty.
func (t *tree) gapAt(pos int) spot {
	if h := t.hint; h.l != nil && h.i > 0 && pos == t.hintPos {
		return h // typing on: h is the gap at pos, inside or at the end of a run
	}
	l, off := t.leafAt(pos, true)
	ri, i := l.gapIn(off)
	return spot{l, ri, i}
}

// keyAt returns the identifier at s, which must be an element.
func (s spot) key() key { return s.l.runs[s.ri].key(s.i) }

// before returns the identifier just before gap s, or the zero key at the beginning.
func (s spot) before() key {
	switch {
	case s.i > 0:
		return s.l.runs[s.ri].key(s.i - 1)
	case s.ri > 0:
		return s.l.runs[s.ri-1].lastKey()
	case s.l.prev != nil:
		p := s.l.prev
		return p.runs[len(p.runs)-1].lastKey()
	}
	return key{}
}

// after returns the identifier just after gap s (the element at s), or the zero key at the end.
func (s spot) after() key {
	switch {
	case s.i < len(s.l.runs[s.ri].elems):
		return s.l.runs[s.ri].key(s.i)
	case s.ri+1 < len(s.l.runs):
		return s.l.runs[s.ri+1].key(0)
	case s.l.next != nil:
		return s.l.next.runs[0].key(0)
	}
	return key{}
}

// prev returns the element before gap s, which must exist.
func (s spot) prev() spot {
	switch {
	case s.i > 0:
		return spot{s.l, s.ri, s.i - 1}
	case s.ri > 0:
		return spot{s.l, s.ri - 1, len(s.l.runs[s.ri-1].elems) - 1}
	}
	p := s.l.prev
	return spot{p, len(p.runs) - 1, len(p.runs[len(p.runs)-1].elems) - 1}
}

// next returns the element after gap s, which must exist.
func (s spot) next() spot {
	switch {
	case s.i < len(s.l.runs[s.ri].elems):
		return s
	case s.ri+1 < len(s.l.runs):
		return spot{s.l, s.ri + 1, 0}
	}
	return spot{s.l.next, 0, 0}
}

// start returns the position of the first element of leaf l.
func (t *tree) start(l *node) int {
	if l == t.finger {
		return t.fingerStart
	}
	pos := 0
	for c, p := l, l.parent; p != nil; c, p = p, p.parent {
		for _, n := range p.counts[:c.idx] {
			pos += n
		}
	}
	return pos
}

// pos returns the position of the element or gap s.
func (t *tree) pos(s spot) int { return t.start(s.l) + s.l.offsetOf(s.ri, s.i) }

// canon returns the tree's own string for prefix p when the run at the hint has that prefix,
// else p. Identifiers that arrive in ops carry prefix strings of their own; comparing them with
// the tree's costs a byte comparison each time, comparing the tree's string with itself nothing.
func (t *tree) canon(p string) string {
	if h := t.hint; h.l != nil {
		if q := h.l.runs[h.ri].prefix; len(q) == len(p) && q == p {
			return q
		}
	}
	return p
}

// find returns the element k, or the gap where k would be inserted, its position, and whether
// k is there. Between two runs the gap is the end of the left one. The tree must not be empty.
func (t *tree) find(k key) (spot, int, bool) {
	if h := t.hint; h.l != nil {
		// The element after the gap first: it is compared with the same prefixes again and
		// again (cmpNear), and a k after it needs no other comparison here.
		nx := h.after()
		c := -1 // the gap is at the end
		if !nx.none() {
			c = t.cmpNear(k, nx)
		}
		if c <= 0 {
			b := h.before()
			cb := -1
			if !b.none() {
				cb = cmpKeys(b, k)
			}
			switch {
			case cb < 0 && c < 0:
				// Typing goes into the gap.
				if h.i == 0 && h.ri > 0 {
					h = spot{h.l, h.ri - 1, len(h.l.runs[h.ri-1].elems)}
				}
				return h, t.hintPos, false
			case cb < 0:
				// Deleting forwards takes the element after it.
				return h.next(), t.hintPos, true
			case cb == 0:
				// Backspacing takes the element before it.
				return h.prev(), t.hintPos - 1, true
			}
		}
	}
	s, found := t.findSlow(k)
	return s, t.pos(s), found
}

// rewind moves the hint back to the gap before the elements that end at it, when those are,
// in order, the elements of runs (deleting a word backwards), and reports whether it did. The
// removal of the first of them then starts from the hint (find's forward delete) with no
// search. The elements are unchanged either way, and so is the hint when it did not.
func (t *tree) rewind(runs []Run) bool {
	h, pos := t.hint, t.hintPos
	if h.l == nil {
		return false
	}
	for ri := len(runs) - 1; ri >= 0; ri-- {
		r := &runs[ri]
		for i := len(r.Digits) - 1; i >= 0; i-- {
			if h.i == 0 {
				switch {
				case h.ri > 0:
					h.ri--
				case h.l.prev != nil:
					h.l = h.l.prev
					h.ri = len(h.l.runs) - 1
				default:
					return false // the start of the document
				}
				h.i = len(h.l.runs[h.ri].elems)
			}
			h.i--
			pos--
			rn := &h.l.runs[h.ri]
			if rn.elems[h.i].digit != r.Digits[i] || rn.site != r.Site ||
				rn.counter+uint32(h.i) != r.Counter+uint32(i) || rn.prefix != string(r.Prefix) {
				return false
			}
		}
	}
	t.hint, t.hintPos = h, pos
	return true
}

// findSlow is find without the hint and the position.
func (t *tree) findSlow(k key) (spot, bool) {
	l, lcpLo, lcpHi := t.findLeaf(k)
	// The first run whose last element is not before k holds k or the gap before it.
	lo, hi := 0, len(l.runs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c, s := cmpFrom(l.runs[m].lastKey(), k, min(lcpLo, lcpHi)); c < 0 {
			lo, lcpLo = m+1, s
		} else {
			hi, lcpHi = m, s
		}
	}
	if lo == len(l.runs) {
		ri := lo - 1
		return spot{l, ri, len(l.runs[ri].elems)}, false
	}
	i, found := l.runs[lo].locate(k)
	if i == 0 && lo > 0 && !found {
		return spot{l, lo - 1, len(l.runs[lo-1].elems)}, false
	}
	return spot{l, lo, i}, found
}

// findLeaf returns the leaf where k is or would go: the last leaf whose first identifier is not
// after k (the first leaf when k is before everything). With it come how many leading bytes k
// shares with the identifiers that bound the leaf's (at least): the search goes on from there.
//
// Identifiers of neighbouring elements share long prefixes, so the searches compare from the
// bytes that the bounds found so far leave open (see cmpFrom) rather than from the start.
func (t *tree) findLeaf(k key) (leaf *node, lcpLo, lcpHi int) {
	if f := t.finger; f != nil {
		if c, lo := cmpFrom(f.first(), k, 0); c <= 0 {
			if f.next == nil {
				return f, lo, 0 // no bound above: nothing known
			}
			if c, hi := cmpFrom(f.next.first(), k, 0); c > 0 {
				return f, lo, hi
			}
		}
	}
	n := t.root
	for !n.leaf {
		lo, hi := 1, len(n.firsts)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if c, s := cmpFrom(n.firsts[m], k, min(lcpLo, lcpHi)); c <= 0 {
				lo, lcpLo = m+1, s
			} else {
				hi, lcpHi = m, s
			}
		}
		n = n.children[lo-1]
	}
	return n, lcpLo, lcpHi
}

// search returns the position of k, or where it would be inserted, and whether it is present.
func (t *tree) search(k key) (int, bool) {
	if t.root == nil {
		return 0, false
	}
	_, pos, found := t.find(k)
	return pos, found
}

// insert puts the element (k, r) at gap s (s.l == nil only when the tree is empty) and returns
// the element's spot; s+1 (the spot with i+1) is then the gap after it. The caller keeps the
// order.
func (t *tree) insert(s spot, k key, r rune, want int) spot {
	t.n++
	l := s.l
	if l == nil {
		l = newLeaf()
		l.runs = append(l.runs, run{prefix: k.prefix, site: k.last.site, counter: k.last.counter,
			elems: append(make([]elem, 0, min(max(want, 8), runCap)), elem{k.last.digit, r})})
		l.n = 1
		t.root, t.finger, t.fingerStart = l, l, 0
		return spot{l, 0, 0}
	}
	lstart := t.start(l)
	l.n++
	ri, i := s.ri, s.i
	if rn := &l.runs[ri]; i == len(rn.elems) && rn.extends(k) {
		if n := len(rn.elems); n == cap(rn.elems) {
			// A typed run grows four times at a time: fewer copies on the way to runCap.
			rn.elems = slices.Grow(rn.elems, min(3*n, runCap-n))
		}
		rn.elems = append(rn.elems, elem{k.last.digit, r})
		t.finger, t.fingerStart = l, lstart
		t.fixUp(l, nil, +1)
		return spot{l, ri, i}
	}
	nr := run{prefix: k.prefix, site: k.last.site, counter: k.last.counter,
		elems: append(make([]elem, 0, min(max(want, 4), runCap)), elem{k.last.digit, r})}
	switch rn := &l.runs[ri]; {
	case i == 0:
	case i == len(rn.elems):
		ri++
	default:
		// Split the run at i; the left part keeps its capacity only up to i, so that growing
		// it never writes over the right part.
		right := run{prefix: rn.prefix, site: rn.site, counter: rn.counter + uint32(i), elems: rn.elems[i:]}
		rn.elems = rn.elems[:i:i]
		l.runs = insertAt(l.runs, ri+1, right)
		ri++
	}
	l.runs = insertAt(l.runs, ri, nr)
	t.finger, t.fingerStart = l, lstart
	t.fixUp(l, nil, +1)
	if ri == 0 {
		t.refreshFirst(l)
	}
	if len(l.runs) > leafCap {
		if split := t.splitLeaf(l); ri >= len(l.runs) {
			t.finger, t.fingerStart = split, lstart+l.n
			return spot{split, ri - len(l.runs), 0}
		}
	}
	return spot{l, ri, 0}
}

// typeOn inserts the element (k, r) at position pos when that is the hint's gap, at the end of
// a run that k continues and that has spare capacity, and reports whether it did. This is
// typing on: it needs no search, no new run and no split.
func (t *tree) typeOn(pos int, k key, r rune) bool {
	h := t.hint
	if h.l == nil || h.l != t.finger || pos != t.hintPos {
		return false
	}
	rn := &h.l.runs[h.ri]
	if n := len(rn.elems); h.i != n || n == cap(rn.elems) || !rn.extends(k) {
		return false
	}
	rn.elems = append(rn.elems, elem{k.last.digit, r})
	t.n++
	h.l.n++
	for c := h.l; c.parent != nil; c = c.parent {
		c.parent.counts[c.idx]++
	}
	t.hint.i++
	t.hintPos++
	return true
}

// typeOnByKey is typeOn for a new identifier k whose position is not known: when k sorts
// before the element after the hint's gap, the gap is where k goes if typeOn takes it there.
// It returns k's position and whether it was inserted.
func (t *tree) typeOnByKey(k key, r rune) (int, bool) {
	h := t.hint
	if h.l == nil {
		return 0, false
	}
	if nx := h.after(); !nx.none() && t.cmpNear(k, nx) >= 0 {
		return 0, false
	}
	pos := t.hintPos // before typeOn moves it
	return pos, t.typeOn(pos, k, r)
}

// splitLeaf moves the second half of l's runs to a new leaf after it and returns that leaf.
func (t *tree) splitLeaf(l *node) *node {
	half := len(l.runs) / 2
	split := newLeaf()
	split.runs = append(split.runs, l.runs[half:]...)
	clear(l.runs[half:])
	l.runs = l.runs[:half]
	for _, x := range split.runs {
		split.n += len(x.elems)
	}
	l.n -= split.n
	split.prev, split.next = l, l.next
	if l.next != nil {
		l.next.prev = split
	}
	l.next = split
	t.fixUp(l, split, 0)
	if h := &t.hint; h.l == l && h.ri >= half {
		// The hint's gap moved with its run. Its position did not change.
		h.l, h.ri = split, h.ri-half
	}
	return split
}

// insertRun inserts at gap s, which is at position pos, the elements of one run: identifiers
// prefix + (digits[i], site, counter+i) with code points rs[i], digits increasing. It returns
// the gap after the last one. Elements that continue a run of the tree are appended to it.
func (t *tree) insertRun(s spot, pos int, prefix string, site SiteID, counter uint32, digits []uint32, rs []rune) spot {
	t.hintPos = pos + len(digits)
	for len(digits) > 0 {
		at := t.insert(s, key{prefix, level{digits[0], site, counter}}, rs[0], len(digits))
		rn := &at.l.runs[at.ri]
		m := min(len(digits), runCap-len(rn.elems)+1)
		if m > 1 {
			rn.elems = slices.Grow(rn.elems, m-1)
			for j := 1; j < m; j++ {
				rn.elems = append(rn.elems, elem{digits[j], rs[j]})
			}
			t.n += m - 1
			at.l.n += m - 1
			t.fixUp(at.l, nil, m-1)
		}
		s = spot{at.l, at.ri, at.i + m}
		digits, rs, counter = digits[m:], rs[m:], counter+uint32(m)
	}
	t.hint = s
	return s
}

// fixUp walks from c to the root after c gained or lost delta elements, recording in each
// parent c's count and linking in c's new right sibling split (if any), splitting full parents
// in turn.
func (t *tree) fixUp(c, split *node, delta int) {
	for {
		p := c.parent
		if p == nil {
			if split != nil {
				root := &node{
					children: []*node{c, split},
					counts:   []int{c.size(), split.size()},
					firsts:   []key{c.first(), split.first()},
				}
				c.parent, split.parent = root, root
				c.idx, split.idx = 0, 1
				t.root = root
			}
			return
		}
		i := c.idx
		if split == nil {
			p.counts[i] += delta
			c = p
			continue
		}
		p.counts[i] = c.size()
		split.parent = p
		p.children = insertAt(p.children, i+1, split)
		p.reindex(i + 1)
		p.counts = insertAt(p.counts, i+1, split.size())
		p.firsts = insertAt(p.firsts, i+1, split.first())
		split = nil
		if len(p.children) > innerCap {
			half := len(p.children) / 2
			split = &node{
				children: append(make([]*node, 0, innerCap+1), p.children[half:]...),
				counts:   append(make([]int, 0, innerCap+1), p.counts[half:]...),
				firsts:   append(make([]key, 0, innerCap+1), p.firsts[half:]...),
			}
			for _, x := range split.children {
				x.parent = split
			}
			split.reindex(0)
			clear(p.children[half:])
			clear(p.firsts[half:])
			p.children, p.counts, p.firsts = p.children[:half], p.counts[:half], p.firsts[:half]
		}
		c = p
	}
}

// refreshFirst records c's first identifier in its ancestors, as far as c is a first child.
func (t *tree) refreshFirst(c *node) {
	for p := c.parent; p != nil; c, p = p, p.parent {
		i := c.idx
		p.firsts[i] = c.first()
		if i != 0 {
			return
		}
	}
}

// remove deletes the n elements of run s.ri from index s.i on (s.i+n <= the run's length), the
// first of which is at position pos. A leaf left empty is unlinked.
func (t *tree) remove(s spot, pos, n int) {
	t.hintPos = pos
	l := s.l
	t.fingerStart = t.start(l)
	t.finger = l
	t.n -= n
	l.n -= n
	rn := &l.runs[s.ri]
	t.hint = spot{l, s.ri, s.i}
	switch end := s.i + n; {
	case s.i == 0 && end == len(rn.elems):
		l.runs = removeAt(l.runs, s.ri)
		if s.ri > 0 {
			t.hint = spot{l, s.ri - 1, len(l.runs[s.ri-1].elems)}
		} // else the gap at the start of l, if l is not left empty (below)
	case s.i == 0:
		rn.elems = rn.elems[n:]
		rn.counter += uint32(n)
	case end == len(rn.elems):
		rn.elems = rn.elems[:s.i]
	default:
		right := run{prefix: rn.prefix, site: rn.site, counter: rn.counter + uint32(end), elems: rn.elems[end:]}
		rn.elems = rn.elems[:s.i:s.i]
		l.runs = insertAt(l.runs, s.ri+1, right)
	}
	if l.n > 0 {
		t.fixUp(l, nil, -n)
		if s.ri == 0 && s.i == 0 {
			t.refreshFirst(l)
		}
		if len(l.runs) > leafCap {
			t.splitLeaf(l)
		}
		return
	}
	t.finger, t.hint.l = nil, nil
	if l.prev != nil {
		l.prev.next = l.next
	}
	if l.next != nil {
		l.next.prev = l.prev
	}
	// Unlink empty nodes up the tree.
	c := l
	for c.parent != nil && c.size() == 0 {
		p := c.parent
		j := c.idx
		p.children = removeAt(p.children, j)
		p.reindex(j)
		p.counts = removeAt(p.counts, j)
		p.firsts = removeAt(p.firsts, j)
		c = p
		if len(p.children) > 0 {
			if j == 0 {
				t.refreshFirst(p)
			}
			break
		}
	}
	if c.size() == 0 && c.parent == nil {
		t.root = nil
		return
	}
	// c lost a child; its ancestors lost n elements.
	if c.parent != nil {
		t.fixUp(c, nil, -n)
	}
	for !t.root.leaf && len(t.root.children) == 1 {
		t.root = t.root.children[0]
		t.root.parent = nil
	}
}

func insertAt[T any](s []T, i int, v T) []T {
	var zero T
	s = append(s, zero)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

func removeAt[T any](s []T, i int) []T {
	copy(s[i:], s[i+1:])
	var zero T
	s[len(s)-1] = zero
	return s[:len(s)-1]
}

// firstLeaf returns the leftmost leaf, or nil when the tree is empty.
func (t *tree) firstLeaf() *node {
	n := t.root
	for n != nil && !n.leaf {
		n = n.children[0]
	}
	return n
}

// eachRun calls f for every run in order until f returns false.
func (t *tree) eachRun(f func(*run) bool) {
	for l := t.firstLeaf(); l != nil; l = l.next {
		for i := range l.runs {
			if !f(&l.runs[i]) {
				return
			}
		}
	}
}

// build replaces the tree's content with runs, which must be sorted, in O(n).
func (t *tree) build(runs []run) {
	t.root, t.n, t.finger, t.hint.l = nil, 0, nil, nil
	if len(runs) == 0 {
		return
	}
	const fill = leafCap * 3 / 4
	var level []*node
	var prev *node
	for i := 0; i < len(runs); i += fill {
		j := min(i+fill, len(runs))
		l := newLeaf()
		l.runs = append(l.runs, runs[i:j]...)
		for _, r := range l.runs {
			l.n += len(r.elems)
		}
		t.n += l.n
		l.prev = prev
		if prev != nil {
			prev.next = l
		}
		prev = l
		level = append(level, l)
	}
	const innerFill = innerCap * 3 / 4
	for len(level) > 1 {
		var up []*node
		for i := 0; i < len(level); i += innerFill {
			j := min(i+innerFill, len(level))
			p := &node{
				children: make([]*node, 0, innerCap+1),
				counts:   make([]int, 0, innerCap+1),
				firsts:   make([]key, 0, innerCap+1),
			}
			for _, c := range level[i:j] {
				c.parent, c.idx = p, len(p.children)
				p.children = append(p.children, c)
				p.counts = append(p.counts, c.size())
				p.firsts = append(p.firsts, c.first())
			}
			up = append(up, p)
		}
		level = up
	}
	t.root = level[0]
}
