package crdt

// The document's elements live in a counted B+tree ordered by identifier. Every internal node
// keeps, per child, its element count (for position lookups) and its last identifier (for
// identifier lookups), so both directions cost O(log n). Leaves are linked in order, every
// node knows its parent, and the tree remembers the leaf it touched last (the finger): editing
// is local, so most identifier lookups end in that leaf after a few comparisons.

const (
	leafCap  = 64 // elements a leaf holds before it splits
	innerCap = 32 // children an internal node holds before it splits
)

type node struct {
	parent *node
	// Internal nodes.
	children []*node
	counts   []int // counts[i]: elements under children[i]
	lasts    []ID  // lasts[i]: the last identifier under children[i]
	// Leaves: never empty while in the tree.
	ids        []ID
	runes      []rune
	prev, next *node
	leaf       bool
}

func (n *node) last() ID {
	if n.leaf {
		return n.ids[len(n.ids)-1]
	}
	return n.lasts[len(n.lasts)-1]
}

func (n *node) size() int {
	if n.leaf {
		return len(n.ids)
	}
	s := 0
	for _, c := range n.counts {
		s += c
	}
	return s
}

// childIndex returns the index of child c in n.
func (n *node) childIndex(c *node) int {
	for i, x := range n.children {
		if x == c {
			return i
		}
	}
	panic("crdt: tree node not linked to its parent")
}

// tree is the counted B+tree. The zero value is an empty tree.
type tree struct {
	root   *node
	n      int
	finger *node // the leaf last touched
	hint   int   // the index last touched in finger
	// fingerStart is finger's first position. Every change goes through the leaf it changes,
	// which becomes the finger, so nothing before the finger changes while it stays one.
	fingerStart int
}

func (t *tree) len() int { return t.n }

// elemAt returns the leaf and index holding position pos, 0 <= pos < len.
func (t *tree) elemAt(pos int) (*node, int) {
	if f := t.finger; f != nil && pos >= t.fingerStart && pos < t.fingerStart+len(f.ids) {
		return f, pos - t.fingerStart
	}
	n := t.root
	for !n.leaf {
		i := 0
		for pos >= n.counts[i] {
			pos -= n.counts[i]
			i++
		}
		n = n.children[i]
	}
	return n, pos
}

// gapAt returns the leaf and index where an element inserted at position pos goes, 0 <= pos <=
// len; at a boundary between leaves it picks the end of the left one. The tree must not be empty.
func (t *tree) gapAt(pos int) (*node, int) {
	if f := t.finger; f != nil && pos > t.fingerStart && pos <= t.fingerStart+len(f.ids) {
		return f, pos - t.fingerStart
	}
	n := t.root
	for !n.leaf {
		i := 0
		for i < len(n.counts)-1 && pos > n.counts[i] {
			pos -= n.counts[i]
			i++
		}
		n = n.children[i]
	}
	return n, pos
}

// at returns the element at position pos, 0 <= pos < len.
func (t *tree) at(pos int) (ID, rune) {
	l, i := t.elemAt(pos)
	return l.ids[i], l.runes[i]
}

// start returns the position of the first element of leaf l.
func (t *tree) start(l *node) int {
	if l == t.finger {
		return t.fingerStart
	}
	pos := 0
	for c, p := l, l.parent; p != nil; c, p = p, p.parent {
		for i, x := range p.children {
			if x == c {
				break
			}
			pos += p.counts[i]
		}
	}
	return pos
}

// find returns the leaf and index where id is or would be inserted, and whether it is there.
// The tree must not be empty.
func (t *tree) find(id ID) (*node, int, bool) {
	if f := t.finger; f != nil {
		// Typing: the identifier goes right after the one touched last.
		if h, n := t.hint, len(f.ids); h < n && f.ids[h] < id {
			if h+1 < n && id <= f.ids[h+1] {
				return f, h + 1, id == f.ids[h+1]
			}
			if h+1 == n && (f.next == nil || id < f.next.ids[0]) {
				return f, n, false
			}
		}
		if first, last := f.ids[0], f.ids[len(f.ids)-1]; id >= first {
			if id <= last {
				i, found := searchLeaf(f, id)
				return f, i, found
			}
			if f.next == nil || id < f.next.ids[0] {
				return f, len(f.ids), false
			}
		}
	}
	n := t.root
	for !n.leaf {
		lo, hi := 0, len(n.lasts)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if n.lasts[m] < id {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if lo == len(n.lasts) {
			lo-- // past every identifier: the end of the last child
		}
		n = n.children[lo]
	}
	i, found := searchLeaf(n, id)
	return n, i, found
}

func searchLeaf(l *node, id ID) (int, bool) {
	lo, hi := 0, len(l.ids)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if l.ids[m] < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(l.ids) && l.ids[lo] == id
}

// search returns the position of id, or where it would be inserted, and whether it is present.
func (t *tree) search(id ID) (int, bool) {
	if t.root == nil {
		return 0, false
	}
	l, i, found := t.find(id)
	return t.start(l) + i, found
}

// insert puts (id, r) at index i of leaf l (l == nil only when the tree is empty) and returns
// where the element ended up, so a run of inserts can continue after it. The caller keeps the
// order.
func (t *tree) insert(l *node, i int, id ID, r rune) (*node, int) {
	t.n++
	if l == nil {
		l = &node{leaf: true, ids: make([]ID, 0, leafCap+1), runes: make([]rune, 0, leafCap+1)}
		t.root = l
	}
	lstart := t.start(l)
	l.ids = insertAt(l.ids, i, id)
	l.runes = insertAt(l.runes, i, r)
	at, atIdx := l, i
	var split *node
	if len(l.ids) > leafCap {
		half := len(l.ids) / 2
		split = &node{leaf: true, ids: make([]ID, 0, leafCap+1), runes: make([]rune, 0, leafCap+1)}
		split.ids = append(split.ids, l.ids[half:]...)
		split.runes = append(split.runes, l.runes[half:]...)
		clear(l.ids[half:])
		l.ids, l.runes = l.ids[:half], l.runes[:half]
		split.prev, split.next = l, l.next
		if l.next != nil {
			l.next.prev = split
		}
		l.next = split
		if i >= half {
			at, atIdx = split, i-half
		}
	}
	t.finger, t.hint, t.fingerStart = at, atIdx, lstart
	if at != l {
		t.fingerStart += len(l.ids)
	}
	t.fixUp(l, split, +1)
	return at, atIdx
}

// fixUp walks from c to the root after c gained or lost delta elements, recording in each
// parent c's count and last identifier and linking in c's new right sibling split (if any),
// splitting full parents in turn.
func (t *tree) fixUp(c, split *node, delta int) {
	for {
		p := c.parent
		if p == nil {
			if split != nil {
				root := &node{
					children: []*node{c, split},
					counts:   []int{c.size(), split.size()},
					lasts:    []ID{c.last(), split.last()},
				}
				c.parent, split.parent = root, root
				t.root = root
			}
			return
		}
		i := p.childIndex(c)
		p.lasts[i] = c.last()
		if split == nil {
			p.counts[i] += delta
			c = p
			continue
		}
		p.counts[i] = c.size()
		split.parent = p
		p.children = insertAt(p.children, i+1, split)
		p.counts = insertAt(p.counts, i+1, split.size())
		p.lasts = insertAt(p.lasts, i+1, split.last())
		split = nil
		if len(p.children) > innerCap {
			half := len(p.children) / 2
			split = &node{
				children: append(make([]*node, 0, innerCap+1), p.children[half:]...),
				counts:   append(make([]int, 0, innerCap+1), p.counts[half:]...),
				lasts:    append(make([]ID, 0, innerCap+1), p.lasts[half:]...),
			}
			for _, x := range split.children {
				x.parent = split
			}
			clear(p.children[half:])
			clear(p.lasts[half:])
			p.children, p.counts, p.lasts = p.children[:half], p.counts[:half], p.lasts[:half]
		}
		c = p
	}
}

// remove deletes and returns the element at index i of leaf l. A node left empty is unlinked.
func (t *tree) remove(l *node, i int) (ID, rune) {
	id, r := l.ids[i], l.runes[i]
	t.fingerStart = t.start(l)
	l.ids = removeAt(l.ids, i)
	l.runes = removeAt(l.runes, i)
	t.n--
	t.finger, t.hint = l, max(i-1, 0)
	c := l
	if len(l.ids) == 0 {
		t.finger = nil
		if l.prev != nil {
			l.prev.next = l.next
		}
		if l.next != nil {
			l.next.prev = l.prev
		}
		// Unlink empty nodes up the tree.
		for c.parent != nil && c.size() == 0 {
			p := c.parent
			j := p.childIndex(c)
			p.children = removeAt(p.children, j)
			p.counts = removeAt(p.counts, j)
			p.lasts = removeAt(p.lasts, j)
			c = p
		}
		if c.parent == nil && c.size() == 0 {
			t.root = nil
			return id, r
		}
		// c lost a child; its ancestors lost one element.
		if c.parent != nil {
			t.fixUp(c, nil, -1)
		}
	} else {
		t.fixUp(l, nil, -1)
	}
	for !t.root.leaf && len(t.root.children) == 1 {
		t.root = t.root.children[0]
		t.root.parent = nil
	}
	return id, r
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

// first returns the leftmost leaf, or nil when the tree is empty.
func (t *tree) first() *node {
	n := t.root
	for n != nil && !n.leaf {
		n = n.children[0]
	}
	return n
}

// each calls f for every element in order until f returns false.
func (t *tree) each(f func(ID, rune) bool) {
	for l := t.first(); l != nil; l = l.next {
		for i, id := range l.ids {
			if !f(id, l.runes[i]) {
				return
			}
		}
	}
}

// build replaces the tree's content with ids and runes, which must be sorted, in O(n).
func (t *tree) build(ids []ID, runes []rune) {
	t.root, t.n, t.finger = nil, len(ids), nil
	if len(ids) == 0 {
		return
	}
	const fill = leafCap * 3 / 4
	var level []*node
	var prev *node
	for i := 0; i < len(ids); i += fill {
		j := min(i+fill, len(ids))
		l := &node{leaf: true, ids: make([]ID, j-i, leafCap+1), runes: make([]rune, j-i, leafCap+1)}
		copy(l.ids, ids[i:j])
		copy(l.runes, runes[i:j])
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
				lasts:    make([]ID, 0, innerCap+1),
			}
			for _, c := range level[i:j] {
				c.parent = p
				p.children = append(p.children, c)
				p.counts = append(p.counts, c.size())
				p.lasts = append(p.lasts, c.last())
			}
			up = append(up, p)
		}
		level = up
	}
	t.root = level[0]
}
