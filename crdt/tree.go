package crdt

// The document's elements live in a counted B+tree ordered by identifier: every internal node
// keeps, per child, its element count (for position lookups) and its last identifier (for
// identifier lookups), so both directions cost O(log n).

const (
	leafCap  = 64 // elements a leaf holds before it splits
	innerCap = 32 // children an internal node holds before it splits
)

type node struct {
	// Internal nodes.
	children []*node
	counts   []int // counts[i]: elements under children[i]
	lasts    []ID  // lasts[i]: the last identifier under children[i]
	// Leaves.
	ids   []ID
	runes []rune
	leaf  bool
}

func newLeaf() *node {
	return &node{leaf: true, ids: make([]ID, 0, leafCap+1), runes: make([]rune, 0, leafCap+1)}
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

// tree is the counted B+tree. The zero value is an empty tree.
type tree struct {
	root *node
	n    int
}

func (t *tree) len() int { return t.n }

// at returns the element at position pos, 0 <= pos < len.
func (t *tree) at(pos int) (ID, rune) {
	n := t.root
	for !n.leaf {
		i := 0
		for pos >= n.counts[i] {
			pos -= n.counts[i]
			i++
		}
		n = n.children[i]
	}
	return n.ids[pos], n.runes[pos]
}

// search returns the position of id, or where it would be inserted, and whether it is present.
func (t *tree) search(id ID) (int, bool) {
	if t.root == nil {
		return 0, false
	}
	n, pos := t.root, 0
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
			return t.n, false
		}
		for i := 0; i < lo; i++ {
			pos += n.counts[i]
		}
		n = n.children[lo]
	}
	lo, hi := 0, len(n.ids)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.ids[m] < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return pos + lo, lo < len(n.ids) && n.ids[lo] == id
}

// insertAt puts (id, r) at position pos, 0 <= pos <= len. The caller keeps the order.
func (t *tree) insertAt(pos int, id ID, r rune) {
	if t.root == nil {
		t.root = newLeaf()
	}
	if right := insertRec(t.root, pos, id, r); right != nil {
		left := t.root
		t.root = &node{
			children: []*node{left, right},
			counts:   []int{left.size(), right.size()},
			lasts:    []ID{left.last(), right.last()},
		}
	}
	t.n++
}

// insertRec inserts below n and returns n's new right sibling if n split.
func insertRec(n *node, pos int, id ID, r rune) *node {
	if n.leaf {
		n.ids = append(n.ids, "")
		copy(n.ids[pos+1:], n.ids[pos:])
		n.ids[pos] = id
		n.runes = append(n.runes, 0)
		copy(n.runes[pos+1:], n.runes[pos:])
		n.runes[pos] = r
		if len(n.ids) <= leafCap {
			return nil
		}
		half := len(n.ids) / 2
		right := newLeaf()
		right.ids = append(right.ids, n.ids[half:]...)
		right.runes = append(right.runes, n.runes[half:]...)
		clear(n.ids[half:])
		n.ids, n.runes = n.ids[:half], n.runes[:half]
		return right
	}
	i := 0
	for i < len(n.counts)-1 && pos > n.counts[i] {
		pos -= n.counts[i]
		i++
	}
	child := n.children[i]
	split := insertRec(child, pos, id, r)
	if split == nil {
		n.counts[i]++
		n.lasts[i] = child.last()
		return nil
	}
	n.counts[i] = child.size()
	n.lasts[i] = child.last()
	n.children = insertAt(n.children, i+1, split)
	n.counts = insertAt(n.counts, i+1, split.size())
	n.lasts = insertAt(n.lasts, i+1, split.last())
	if len(n.children) <= innerCap {
		return nil
	}
	half := len(n.children) / 2
	right := &node{
		children: append([]*node(nil), n.children[half:]...),
		counts:   append([]int(nil), n.counts[half:]...),
		lasts:    append([]ID(nil), n.lasts[half:]...),
	}
	clear(n.children[half:])
	clear(n.lasts[half:])
	n.children, n.counts, n.lasts = n.children[:half], n.counts[:half], n.lasts[:half]
	return right
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

// deleteAt removes and returns the element at position pos, 0 <= pos < len.
func (t *tree) deleteAt(pos int) (ID, rune) {
	id, r := deleteRec(t.root, pos)
	t.n--
	for !t.root.leaf && len(t.root.children) == 1 {
		t.root = t.root.children[0]
	}
	if t.n == 0 {
		t.root = nil
	}
	return id, r
}

// deleteRec removes below n. A child left empty is unlinked; under-full nodes are merged with
// a neighbour when the two fit in one, so the tree stays shallow after mass deletes.
func deleteRec(n *node, pos int) (ID, rune) {
	if n.leaf {
		id, r := n.ids[pos], n.runes[pos]
		n.ids = removeAt(n.ids, pos)
		n.runes = removeAt(n.runes, pos)
		return id, r
	}
	i := 0
	for pos >= n.counts[i] {
		pos -= n.counts[i]
		i++
	}
	child := n.children[i]
	id, r := deleteRec(child, pos)
	n.counts[i]--
	if n.counts[i] == 0 {
		n.children = removeAt(n.children, i)
		n.counts = removeAt(n.counts, i)
		n.lasts = removeAt(n.lasts, i)
		return id, r
	}
	n.lasts[i] = child.last()
	n.mergeSmall(i)
	return id, r
}

// mergeSmall folds child i into a neighbour when both together fill at most half a node.
func (n *node) mergeSmall(i int) {
	child := n.children[i]
	capacity := innerCap
	if child.leaf {
		capacity = leafCap
	}
	width := func(c *node) int {
		if c.leaf {
			return len(c.ids)
		}
		return len(c.children)
	}
	if width(child) > capacity/4 {
		return
	}
	j := i + 1
	if j == len(n.children) {
		j, i = i, i-1
	}
	if i < 0 || width(n.children[i])+width(n.children[j]) > capacity/2 {
		return
	}
	l, r := n.children[i], n.children[j]
	if l.leaf {
		l.ids = append(l.ids, r.ids...)
		l.runes = append(l.runes, r.runes...)
	} else {
		l.children = append(l.children, r.children...)
		l.counts = append(l.counts, r.counts...)
		l.lasts = append(l.lasts, r.lasts...)
	}
	n.counts[i] += n.counts[j]
	n.lasts[i] = n.lasts[j]
	n.children = removeAt(n.children, j)
	n.counts = removeAt(n.counts, j)
	n.lasts = removeAt(n.lasts, j)
}

// each calls f for every element in order until f returns false.
func (t *tree) each(f func(ID, rune) bool) {
	if t.root != nil {
		eachRec(t.root, f)
	}
}

func eachRec(n *node, f func(ID, rune) bool) bool {
	if n.leaf {
		for i, id := range n.ids {
			if !f(id, n.runes[i]) {
				return false
			}
		}
		return true
	}
	for _, c := range n.children {
		if !eachRec(c, f) {
			return false
		}
	}
	return true
}

// build replaces the tree's content with ids and runes, which must be sorted, in O(n).
func (t *tree) build(ids []ID, runes []rune) {
	t.root, t.n = nil, len(ids)
	if len(ids) == 0 {
		return
	}
	const fill = leafCap * 3 / 4
	var level []*node
	for i := 0; i < len(ids); i += fill {
		j := min(i+fill, len(ids))
		l := &node{leaf: true, ids: make([]ID, j-i, leafCap+1), runes: make([]rune, j-i, leafCap+1)}
		copy(l.ids, ids[i:j])
		copy(l.runes, runes[i:j])
		level = append(level, l)
	}
	const innerFill = innerCap * 3 / 4
	for len(level) > 1 {
		var up []*node
		for i := 0; i < len(level); i += innerFill {
			j := min(i+innerFill, len(level))
			p := &node{}
			for _, c := range level[i:j] {
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
