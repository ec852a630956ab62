package crdt

import (
	"math/bits"
	"math/rand/v2"
)

// Rand is the randomness an allocation draws from. math/rand/v2's *rand.Rand, *rand.PCG and
// *rand.ChaCha8 all satisfy it. The CRDT never reads a global source, so a seeded Rand makes
// every allocation reproducible.
type Rand interface{ Uint64() uint64 }

// source is the Rand a Doc draws from. It calls a *rand.PCG (what tests and tools pass) directly
// rather than through the interface (allocRun inlines that call); it draws exactly what the Rand
// itself would, in the same order.
type source struct {
	pcg *rand.PCG // the Rand, when it is one
	rng Rand
}

func newSource(r Rand) source {
	p, _ := r.(*rand.PCG)
	return source{pcg: p, rng: r}
}

func (s *source) Uint64() uint64 {
	if s.pcg != nil {
		return s.pcg.Uint64()
	}
	return s.rng.Uint64()
}

// DefaultBoundary is LSEQ's boundary: the widest step an allocation takes from its neighbour.
const DefaultBoundary = 10

// strategyBits fixes the allocation strategy of each depth: bit d set means boundary+ (allocate
// close to the left neighbour), clear means boundary- (close to the right neighbour). It is a
// constant, so every replica chooses the same strategy at the same depth. The pattern repeats
// "+ + -": two boundary+ depths for every boundary- one. Text is mostly typed left to right,
// which boundary+ serves; the boundary- depth keeps typing backwards logarithmic too. On the
// three traces it gives 30-45% shallower identifiers than alternating "+ -" (docs/adr/0001).
const strategyBits uint64 = 0xB6DB6DB6DB6DB6DB

func boundaryPlus(depth int) bool { return strategyBits>>(uint(depth)&63)&1 == 1 }

// maxInterval caps the interval arithmetic. Once the room between two neighbours at some depth
// reaches it, it can only grow deeper, so the cap never changes a decision.
const maxInterval = 1 << 31

// alloc returns a new identifier strictly between p and q, following LSEQ (Nédelec et al.,
// DocEng 2013): find the shallowest depth with room between the neighbours' prefixes, take a
// random step of at most boundary from the left neighbour (boundary+) or the right one
// (boundary-) according to the depth's strategy, and give every level the triple of the
// neighbour whose digits it copies, or (site, counter) where it is new. The zero key p stands
// for the beginning of the document and the zero key q for its end. p must sort before q.
//
// One deviation keeps identifiers extensible: an identifier never ends in digit 0 (then there is
// always room below it), so a candidate ending in 0 moves one step, or the search goes deeper.
//
// The new key shares p's or q's prefix string when its leading levels are theirs, so the
// identifiers typed one after another cost no allocation. When the new key ends at a boundary+
// depth and follows p's digits above it (typing after p; or going deeper than p, when p is not
// a prefix of q), room is the distance that remains from it to q at that depth, for allocNext:
// alloc from the new key would find exactly that. Otherwise room is 0.
func alloc(p, q key, site SiteID, counter uint32, boundary uint64, rng Rand) (k key, room int64, err error) {
	// The neighbours' digits are read as mixed-radix numbers. The right bound is q's first qLen
	// digits, then base(virt) at depth virt ("one past the last digit"), then zeros.
	np := p.depth()
	qLen, virt := q.depth(), -1
	shared := 0 // leading levels where p and q hold the same triple
	if qLen == 0 {
		virt = 0
	} else {
		shared = sharedKeyLevels(p, q)
		if shared < np && shared < qLen && p.digitAt(shared) == q.digitAt(shared) {
			// Same digit, different site or counter: every extension of p's level shared
			// sorts between p and q, so the right bound becomes the end of that subtree.
			qLen, virt = shared+1, shared+1
		}
	}
	pd := func(d int) uint64 {
		if d < np {
			return uint64(p.digitAt(d))
		}
		return 0
	}
	qd := func(d int) uint64 {
		switch {
		case d < qLen:
			return uint64(q.digitAt(d))
		case d == virt:
			return base(d)
		}
		return 0
	}

	// The digits agree above level shared, so the room there is 0.
	var diff int64
	for d := shared; d < MaxDepth; d++ {
		b := base(d)
		if diff < maxInterval {
			diff = diff*int64(b) + int64(qd(d)) - int64(pd(d))
		}
		if diff < 0 {
			return key{}, 0, invalidf(CodeBadOp, "neighbours out of order: %v !< %v", p.id(), q.id())
		}
		if diff < 2 {
			continue
		}
		interval := uint64(diff - 1)
		step := min(boundary, interval)
		delta, _ := bits.Mul64(rng.Uint64(), step) // uniform in [0, step)
		delta++
		plus := boundaryPlus(d)
		var last uint64
		if plus {
			last = (pd(d) + delta) & (b - 1) // b is a power of two
		} else {
			last = (qd(d) + b - delta) & (b - 1)
		}
		if last == 0 {
			switch {
			case delta < interval:
				delta++
			case delta > 1:
				delta--
			default:
				continue
			}
		}
		if plus && d == np-1 && pd(d)+delta < b {
			// Typing after p: p's own prefix, a new last digit.
			return key{prefix: p.prefix, last: level{uint32(pd(d) + delta), site, counter}}, diff - int64(delta), nil
		}
		// nd is the new identifier's digits; its first keep levels are p's, triples and all.
		// Identifiers are rarely deeper than 16 levels: the buffer then stays on the stack.
		var ndBuf [16]uint64
		nd := append(ndBuf[:0], make([]uint64, d+1)...)
		keep := shared
		room := int64(0)
		if plus && pd(d)+delta < b && shared < np {
			// The new key follows p's digits down to depth d, and p is not a prefix of q (its
			// levels below p's copy no triple of q's): alloc from it would find the same right
			// bound, no room above depth d, and at d what is left of diff.
			room = diff - int64(delta)
		}
		if plus {
			for j := 0; j <= d; j++ {
				nd[j] = pd(j)
			}
			nd[d] += delta
			j := d
			for ; j > 0 && nd[j] >= base(j); j-- {
				nd[j] -= base(j)
				nd[j-1]++
			}
			keep = max(keep, min(j, np))
		} else {
			for j := 0; j <= d; j++ {
				nd[j] = qd(j)
			}
			for j := d; j >= 0; j-- {
				if nd[j] >= delta {
					nd[j] -= delta
					break
				}
				nd[j] = nd[j] + base(j) - delta
				delta = 1
			}
		}
		return buildKey(nd, keep, shared, p, q, site, counter), room, nil
	}
	return key{}, 0, invalidf(CodeExhausted, "no identifier left between %v and %v", p.id(), q.id())
}

// allocNext allocates the identifier after prev towards the same right neighbour, where alloc
// or allocNext just returned prev with room: at prev's depth, with a boundary+ step, exactly as
// alloc(prev, q) would, without searching the depths again (the depths above hold no room, and
// the room at prev's depth is what is left of it). ok is false when the step could leave the
// depth's base: then alloc must be called.
func allocNext(prev key, room int64, site SiteID, counter uint32, boundary uint64, rng *source) (k key, left int64, ok bool) {
	if room < 2 {
		return key{}, 0, false
	}
	step := min(boundary, uint64(room-1))
	g := uint64(prev.last.digit)
	if g+step >= base(len(prev.prefix)/tripleSize) {
		return key{}, 0, false
	}
	delta, _ := bits.Mul64(rng.Uint64(), step)
	delta++
	return key{prefix: prev.prefix, last: level{uint32(g + delta), site, counter}}, room - int64(delta), true
}

// allocRun is allocNext called again and again after prev, while it answers and at most n
// times: it appends the last digits of the identifiers it would return (prev's prefix, the
// next counters) to digits and returns them with the room left. It draws what those calls
// would draw, in the same order.
func allocRun(digits []uint32, prev key, room int64, n int, boundary uint64, rng *source) ([]uint32, int64) {
	b := base(len(prev.prefix) / tripleSize)
	g := uint64(prev.last.digit)
	for ; n > 0 && room >= 2; n-- {
		step := min(boundary, uint64(room-1))
		if g+step >= b {
			break
		}
		var r uint64
		if rng.pcg != nil {
			r = rng.pcg.Uint64() // inlined: see source
		} else {
			r = rng.rng.Uint64()
		}
		delta, _ := bits.Mul64(r, step)
		g += delta + 1
		room -= int64(delta + 1)
		digits = append(digits, uint32(g))
	}
	return digits, room
}

// buildKey gives each level of the digits nd a triple: the left neighbour's while nd follows
// p's path, else the right neighbour's while it follows q's, else (site, counter). Copying the
// neighbours' triples where the digits agree is what keeps p < id < q. The first keep levels
// are known to follow p, and p and q share their first shared levels.
func buildKey(nd []uint64, keep, shared int, p, q key, site SiteID, counter uint32) key {
	np, nq := p.depth(), q.depth()
	n := len(nd) - 1
	var last level
	var buf [16 * tripleSize]byte // the prefix's bytes; identifiers are rarely deeper
	b := buf[:0]
	put := func(j int, l level) {
		if j < n {
			b = appendLevel(b, l)
		} else {
			last = l
		}
	}
	// The levels kept from p's prefix are copied as they are.
	j0 := min(keep, n, len(p.prefix)/tripleSize)
	b = append(b, p.prefix[:j0*tripleSize]...)
	for j := j0; j < keep; j++ {
		put(j, p.levelAt(j))
	}
	onP, onQ := true, nq > 0 && keep <= shared
	for j := keep; j <= n; j++ {
		dg := uint32(nd[j])
		switch {
		case onP && j < np && p.digitAt(j) == dg:
			l := p.levelAt(j)
			put(j, l)
			onQ = onQ && j < nq && l == q.levelAt(j)
		case onQ && j < nq && q.digitAt(j) == dg:
			onP = false
			put(j, q.levelAt(j))
		default:
			onP, onQ = false, false
			put(j, level{dg, site, counter})
		}
	}
	k := key{last: last}
	switch {
	case string(b) == p.prefix:
		k.prefix = p.prefix
	case string(b) == q.prefix:
		k.prefix = q.prefix
	default:
		k.prefix = string(b)
	}
	return k
}
