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
	rng      source
	boundary uint64
	elems    tree
	clock    map[SiteID]uint32 // highest counter applied, per site other than site and peer
	own      uint32            // highest counter of site applied
	// peer is the remote site applied last (when hasPeer): its counter is in peerSeen, not in
	// clock, which saves a map write an op.
	peer     SiteID
	peerSeen uint32
	hasPeer  bool
	held     map[SiteID][]Op // ops that came before their site's earlier ops, by Counter
	doomed   map[Dot]ID      // deletes that came before the insert they delete
	// typedAt, typedRoom and typedKey describe the last local insert while nothing else has
	// changed the document: the position after it, the room allocNext needs to continue it
	// (0: none), and its last identifier.
	typedAt   int
	typedRoom int64
	typedKey  key
	digits    []uint32 // Insert's identifiers' last digits, reused
	starts    []int    // where each run of Insert's identifiers starts, reused
	runes     []rune   // Insert's and Apply's code points, reused
	changeBuf []byte   // Apply's buffer for the text of a change of several code points, reused
}

// seen returns the highest counter of site s applied.
func (d *Doc) seen(s SiteID) uint32 {
	switch {
	case s == d.site:
		return d.own
	case d.hasPeer && s == d.peer:
		return d.peerSeen
	}
	return d.clock[s]
}

func (d *Doc) setSeen(s SiteID, c uint32) {
	switch {
	case s == d.site:
		d.own = c
	case d.hasPeer && s == d.peer:
		d.peerSeen = c
	default:
		if d.hasPeer {
			d.clock[d.peer] = d.peerSeen
		}
		delete(d.clock, s)
		d.peer, d.peerSeen, d.hasPeer = s, c, true
	}
}

// continues reports whether b follows a in one run: same prefix and site, the next counter, a
// greater last digit.
func continues(a, b key) bool {
	return b.last.site == a.last.site && b.last.counter == a.last.counter+1 &&
		b.last.digit > a.last.digit && b.prefix == a.prefix
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
		rng:      newSource(rng),
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
	d.elems.eachRun(func(r *run) bool {
		for _, e := range r.elems {
			sb.WriteRune(e.r)
		}
		return true
	})
	return sb.String()
}

// IDAt returns the identifier of the code point at pos, 0 <= pos < Len, in O(log n).
func (d *Doc) IDAt(pos int) (ID, error) {
	if pos < 0 || pos >= d.Len() {
		return "", invalidf(CodeRange, "position %d outside [0,%d)", pos, d.Len())
	}
	return d.elems.elemAt(pos).key().id(), nil
}

// IndexOf returns the position of id, and false when the document does not hold it, in O(log n).
func (d *Doc) IndexOf(id ID) (int, bool) {
	if len(id) < tripleSize || len(id)%tripleSize != 0 {
		return 0, false
	}
	return d.elems.search(keyOf(id))
}

// IDs calls f with every identifier and its code point, in document order, until f returns false.
func (d *Doc) IDs(f func(ID, rune) bool) {
	d.elems.eachRun(func(r *run) bool {
		for i, e := range r.elems {
			if !f(r.key(i).id(), e.r) {
				return false
			}
		}
		return true
	})
}

// Clock returns, per site, the highest counter this replica has applied (a version vector).
func (d *Doc) Clock() map[SiteID]uint32 {
	c := make(map[SiteID]uint32, len(d.clock)+2)
	for s, n := range d.clock {
		c[s] = n
	}
	if d.hasPeer {
		c[d.peer] = d.peerSeen
	}
	if d.own > 0 {
		c[d.site] = d.own
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
func (d *Doc) Insert(pos int, text string) (op Op, err error) {
	// A wrapper small enough to inline: the op is written where the caller keeps it, not
	// copied out of a result slot just written (which stalls the copy's loads).
	err = d.insert(&op, pos, text)
	return op, err
}

func (d *Doc) insert(op *Op, pos int, text string) error {
	if pos < 0 || pos > d.Len() {
		return invalidf(CodeRange, "insert at %d outside [0,%d]", pos, d.Len())
	}
	n := 1 // a typed ASCII character needs no scan
	if len(text) != 1 || text[0] >= utf8.RuneSelf {
		if !utf8.ValidString(text) {
			return invalidf(CodeBadText, "insert text is not valid UTF-8")
		}
		n = utf8.RuneCountInString(text)
	}
	if n == 0 {
		return nil
	}
	if n > MaxOpElements {
		return invalidf(CodeTooLarge, "insert of %d code points over %d", n, MaxOpElements)
	}
	first := d.own + 1
	if uint64(first)+uint64(n)-1 > math.MaxUint32 {
		return invalidf(CodeExhausted, "site %d has no counters left", d.site)
	}
	// at is the gap at pos, looked up (located) only when needed: typing on after the last
	// local insert knows the element before it.
	var at spot
	located := d.elems.root == nil
	var prev, next key
	var room int64
	if pos == d.typedAt && d.typedRoom > 0 {
		prev, room = d.typedKey, d.typedRoom
	} else if !located {
		at, located = d.elems.gapAt(pos), true
		prev = at.before()
	}
	if n == 1 {
		// A typed character: no scratch, no grouping.
		k, left, ok := allocNext(prev, room, d.site, first, d.boundary, &d.rng)
		if !ok {
			if !located {
				at, located = d.elems.gapAt(pos), true
			}
			if at.l != nil {
				next = at.after()
			}
			var err error
			if k, left, err = alloc(prev, next, d.site, first, d.boundary, &d.rng); err != nil {
				return err
			}
		}
		// The op's fields (op is zero) are written first, one by one: the caller reads them
		// back soon after, which is cheaper when the stores are done and of the same sizes.
		op.Kind, op.Site, op.Counter, op.Text, op.one, op.checked = OpInsert, d.site, first, text, k, true
		r, _ := utf8.DecodeRuneInString(text)
		if !d.elems.typeOn(pos, k, r) {
			if !located {
				at = d.elems.gapAt(pos)
			}
			dg, rs := [1]uint32{k.last.digit}, [1]rune{r}
			d.elems.insertRun(at, pos, k.prefix, k.last.site, k.last.counter, dg[:], rs[:])
		}
		d.own = first
		d.typedAt, d.typedRoom, d.typedKey = pos+1, left, k
		return nil
	}
	// Allocate every identifier first, so that an error leaves the document unchanged. They
	// come in stretches that share a prefix (runs), kept as the digits and where each starts.
	if !located {
		at = d.elems.gapAt(pos)
	}
	if at.l != nil {
		next = at.after()
	}
	digits, starts := d.digits[:0], d.starts[:0]
	var few [4]string
	prefixes := few[:0] // one for each stretch; rarely more than a few
	for i := 0; i < n; {
		c := first + uint32(i)
		k, left, ok := allocNext(prev, room, d.site, c, d.boundary, &d.rng)
		if !ok {
			var err error
			if k, left, err = alloc(prev, next, d.site, c, d.boundary, &d.rng); err != nil {
				return err
			}
		}
		if i == 0 || !ok && !continues(prev, k) {
			starts = append(starts, i)
			prefixes = append(prefixes, k.prefix)
		}
		digits = append(digits, k.last.digit)
		// The identifiers allocNext gives after k, all at once (the next call to it fails).
		m := len(digits)
		digits, left = allocRun(digits, k, left, n-i-1, d.boundary, &d.rng)
		i += 1 + len(digits) - m
		prev, room = key{k.prefix, level{digits[len(digits)-1], d.site, first + uint32(i-1)}}, left
	}
	starts = append(starts, n)
	runes := d.runes[:0]
	for _, r := range text {
		runes = append(runes, r)
	}
	d.digits, d.starts, d.runes = digits[:0], starts[:0], runes[:0]
	b := newOpBuilder(n)
	for g, p := range prefixes {
		i, j := starts[g], starts[g+1]
		c := first + uint32(i)
		at = d.elems.insertRun(at, pos+i, p, d.site, c, digits[i:j], runes[i:j])
		b.addStretch(p, d.site, c, digits[i:j])
	}
	d.own = first + uint32(n) - 1
	d.typedAt, d.typedRoom, d.typedKey = pos+n, room, prev
	*op = b.op(OpInsert, d.site, first, text)
	return nil
}

// Delete removes n code points from position pos and returns the op to send. n == 0 returns
// the zero Op. On error the document is unchanged.
func (d *Doc) Delete(pos, n int) (op Op, err error) {
	err = d.delete(&op, pos, n)
	return op, err
}

func (d *Doc) delete(op *Op, pos, n int) error {
	if pos < 0 || n < 0 || pos+n > d.Len() {
		return invalidf(CodeRange, "delete [%d,%d) outside [0,%d)", pos, pos+n, d.Len())
	}
	if n == 0 {
		return nil
	}
	if n > MaxOpElements {
		return invalidf(CodeTooLarge, "delete of %d code points over %d", n, MaxOpElements)
	}
	if d.own == math.MaxUint32 {
		return invalidf(CodeExhausted, "site %d has no counters left", d.site)
	}
	d.typedRoom = 0
	if n == 1 {
		// One element (backspace, delete): the op's fields first, as in insert.
		at := d.elems.elemAt(pos)
		op.Kind, op.Site, op.Counter, op.one, op.checked = OpDelete, d.site, d.own+1, at.key(), true
		d.elems.remove(at, pos, 1)
		d.own++
		return nil
	}
	at := d.elems.elemAt(pos)
	// The op's runs are at most the document's runs that the elements span: counted first, so
	// that a long delete allocates them once.
	b := opBuilder{runs: make([]Run, 0, d.elems.runsSpanned(at, n)), digits: make([]uint32, 0, n)}
	for left := n; ; at = d.elems.elemAt(pos) {
		rn := &at.l.runs[at.ri]
		k := min(left, len(rn.elems)-at.i)
		b.addRun(rn, at.i, k)
		d.elems.remove(at, pos, k)
		if left -= k; left == 0 {
			break
		}
	}
	d.own++
	*op = b.op(OpDelete, d.site, d.own, "")
	return nil
}

// Apply folds a remote op into the replica and returns what changed in the text.
//
// An op already applied changes nothing. An op that comes before an earlier op of its site is
// held and applied, with its effects returned, by the Apply call that delivers the missing op.
// A delete of an element whose insert has not arrived is remembered, and that insert then
// adds nothing. An invalid op returns an *InvalidError and changes nothing.
func (d *Doc) Apply(op Op) ([]Change, error) { return d.ApplyTo(nil, op) }

// maxKeptBuf is the largest buffer Apply keeps for the next op's changes.
const maxKeptBuf = 64 << 10

// ApplyTo is Apply, appending the changes to dst: a caller that reuses dst applies ops without
// allocating.
func (d *Doc) ApplyTo(dst []Change, op Op) ([]Change, error) {
	if err := op.Validate(); err != nil {
		return dst, err
	}
	last := d.seen(op.Site)
	end := op.Counter + op.Span() - 1
	switch {
	case end <= last:
		return dst, nil // a duplicate
	case op.Counter <= last:
		return dst, invalidf(CodeBadOp, "op %d:%d..%d overlaps counters already applied up to %d",
			op.Site, op.Counter, end, last)
	case op.Counter > last+1:
		d.hold(op)
		return dst, nil
	}
	d.typedRoom = 0
	cs := changes{list: dst, base: len(dst), buf: d.changeBuf[:0]}
	d.apply(&op, &cs)
	for len(d.held) > 0 {
		h := d.held[op.Site]
		if len(h) == 0 || h[0].Counter > d.seen(op.Site)+1 {
			break
		}
		next := h[0]
		d.held[op.Site] = h[1:]
		if len(h) == 1 {
			delete(d.held, op.Site)
		}
		if next.Counter == d.seen(op.Site)+1 {
			d.apply(&next, &cs)
		}
	}
	dst = cs.done() // the texts are copied out of buf: it can be reused
	if cap(cs.buf) <= maxKeptBuf {
		d.changeBuf = cs.buf[:0]
	}
	return dst, nil
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
		d.applyInsert(op, cs)
	} else {
		d.applyDelete(op, cs)
	}
	d.setSeen(op.Site, op.Counter+op.Span()-1)
}

func (d *Doc) applyInsert(op *Op, cs *changes) {
	// The runs' fields are passed one by one: a one-element op's digit then stays on the stack.
	if op.single() {
		// A typed character.
		k := op.one
		k.prefix = d.elems.canon(k.prefix)
		if len(d.doomed) > 0 {
			if _, ok := d.doomed[Dot{k.last.site, k.last.counter}]; ok {
				delete(d.doomed, Dot{k.last.site, k.last.counter})
				return
			}
		}
		r, _ := utf8.DecodeRuneInString(op.Text)
		// Typing on from the last change first. k is new (the clock said so): it is not in
		// the tree, so only where it goes matters.
		pos, ok := d.elems.typeOnByKey(k, r)
		if !ok {
			var at spot
			if d.elems.root != nil {
				var found bool
				if at, pos, found = d.elems.find(k); found {
					return
				}
			}
			dg, rs := [1]uint32{k.last.digit}, [1]rune{r}
			d.elems.insertRun(at, pos, k.prefix, k.last.site, k.last.counter, dg[:], rs[:])
		}
		cs.add(Inserted, pos, r)
		return
	}
	text := op.Text
	for _, r := range op.runs {
		text = d.insertStretch(d.elems.canon(string(r.Prefix)), r.Site, r.Counter, r.Digits, text, cs)
	}
}

// insertStretch inserts the elements of one run of an insert op, carrying the code points at
// the start of text, and returns the rest of text.
func (d *Doc) insertStretch(prefix string, site SiteID, counter uint32, digits []uint32, text string, cs *changes) string {
	runes := d.runes[:0]
	var at spot // the gap after the elements inserted last, while it is known
	pos := 0
	for i := 0; i < len(digits); {
		k := key{prefix, level{digits[i], site, counter + uint32(i)}}
		if len(d.doomed) > 0 {
			if _, ok := d.doomed[Dot{site, k.last.counter}]; ok {
				delete(d.doomed, Dot{site, k.last.counter})
				_, size := utf8.DecodeRuneInString(text)
				text = text[size:]
				at.l = nil
				i++
				continue
			}
		}
		if d.elems.root == nil {
			at, pos = spot{}, 0
		} else if at.l == nil || !at.after().none() && cmpKeys(at.after(), k) <= 0 {
			// Not right after the elements inserted last: look it up.
			var found bool
			if at, pos, found = d.elems.find(k); found {
				_, size := utf8.DecodeRuneInString(text)
				text = text[size:]
				at.l = nil
				i++
				continue
			}
			pos = d.elems.pos(at)
		}
		// Every element of r before the next one of the document goes here.
		j := len(digits)
		if at.l != nil {
			if nx := at.after(); !nx.none() {
				lo, hi := i+1, j
				for lo < hi {
					m := int(uint(lo+hi) >> 1)
					if cmpKeys(key{prefix, level{digits[m], site, counter + uint32(m)}}, nx) < 0 {
						lo = m + 1
					} else {
						hi = m
					}
				}
				j = lo
			}
		}
		if len(d.doomed) > 0 {
			for c := i + 1; c < j; c++ {
				if _, ok := d.doomed[Dot{site, counter + uint32(c)}]; ok {
					j = c
					break
				}
			}
		}
		runes = runes[:0]
		end := 0
		for c := i; c < j; c++ {
			ch, size := utf8.DecodeRuneInString(text[end:])
			runes = append(runes, ch)
			end += size
		}
		at = d.elems.insertRun(at, pos, prefix, site, counter+uint32(i), digits[i:j], runes)
		cs.addText(Inserted, pos, text[:end], j-i)
		text = text[end:]
		pos += j - i
		i = j
	}
	d.runes = runes[:0]
	return text
}

func (d *Doc) applyDelete(op *Op, cs *changes) {
	if op.single() {
		digit := [1]uint32{op.one.last.digit}
		d.deleteStretch(d.elems.canon(op.one.prefix), op.one.last.site, op.one.last.counter, digit[:], cs)
		return
	}
	d.elems.rewind(op.runs)
	for _, r := range op.runs {
		d.deleteStretch(d.elems.canon(string(r.Prefix)), r.Site, r.Counter, r.Digits, cs)
	}
}

// deleteStretch removes the elements of one run of a delete op: those whose inserts have not
// arrived are remembered, the others removed a stretch of consecutive ones at a time.
func (d *Doc) deleteStretch(prefix string, site SiteID, counter uint32, digits []uint32, cs *changes) {
	n := len(digits)
	if seen := d.seen(site); seen < counter+uint32(n)-1 {
		applied := 0
		if seen >= counter {
			applied = int(seen-counter) + 1
		}
		for i := applied; i < n; i++ {
			k := key{prefix, level{digits[i], site, counter + uint32(i)}}
			d.doomed[Dot{site, k.last.counter}] = k.id()
		}
		n = applied
	}
	for i := 0; i < n && d.elems.root != nil; {
		at, pos, found := d.elems.find(key{prefix, level{digits[i], site, counter + uint32(i)}})
		if !found {
			i++
			continue
		}
		tr := &at.l.runs[at.ri]
		k := 1
		if tr.prefix == prefix {
			for at.i+k < len(tr.elems) && i+k < n && tr.elems[at.i+k].digit == digits[i+k] &&
				tr.counter+uint32(at.i+k) == counter+uint32(i+k) {
				k++
			}
		}
		cs.addElems(Deleted, pos, tr.elems[at.i:at.i+k])
		d.elems.remove(at, pos, k)
		i += k
	}
}
