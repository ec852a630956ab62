package crdt

// Rand is the randomness an allocation draws from. math/rand/v2's *rand.Rand, *rand.PCG and
// *rand.ChaCha8 all satisfy it. The CRDT never reads a global source, so a seeded Rand makes
// every allocation reproducible.
type Rand interface{ Uint64() uint64 }

// DefaultBoundary is LSEQ's boundary: the widest step an allocation takes from its neighbour.
const DefaultBoundary = 10

// strategyBits fixes the allocation strategy of each depth: bit d set means boundary+ (allocate
// close to the left neighbour), clear means boundary- (close to the right neighbour). It is a
// constant of the format, so every replica chooses the same strategy at the same depth. The
// pattern (the golden-ratio constant) alternates the low depths, as the paper recommends.
const strategyBits uint64 = 0x9E3779B97F4A7C15

func boundaryPlus(depth int) bool { return strategyBits>>(depth%64)&1 == 1 }

// maxInterval caps the interval arithmetic. Once the room between two neighbours at some depth
// reaches it, it can only grow deeper, so the cap never changes a decision.
const maxInterval = 1 << 31

// alloc returns a new identifier strictly between p and q, following LSEQ (Nédelec et al.,
// DocEng 2013): find the shallowest depth with room between the neighbours' prefixes, take a
// random step of at most boundary from the left neighbour (boundary+) or the right one
// (boundary-) according to the depth's strategy, and give every level the triple of the
// neighbour whose digits it copies, or (site, counter) where it is new. p == "" stands for the
// beginning of the document and q == "" for its end. p must sort before q.
//
// One deviation keeps identifiers extensible: an identifier never ends in digit 0 (then there is
// always room below it), so a candidate ending in 0 moves one step, or the search goes deeper.
func alloc(p, q ID, site SiteID, counter uint32, boundary uint64, rng Rand) (ID, error) {
	// pd and qd are the neighbours' digits read as mixed-radix numbers; the right bound may hold
	// base(d) at one level ("one past the last digit"), which only ever is subtracted from.
	var pd, qd [MaxDepth]uint64
	np, nq := p.Depth(), q.Depth()
	for d := 0; d < np; d++ {
		pd[d] = uint64(p.digit(d))
	}
	if q == "" {
		qd[0] = base(0)
	} else {
		for d := 0; d < nq; d++ {
			qd[d] = uint64(q.digit(d))
		}
		i := 0
		for i < np && i < nq && p[i*tripleSize:(i+1)*tripleSize] == q[i*tripleSize:(i+1)*tripleSize] {
			i++
		}
		if i < np && i < nq && pd[i] == qd[i] {
			// Same digit, different site or counter: every extension of p's level i sorts
			// between p and q, so the right bound becomes the end of that subtree.
			for d := i + 1; d < MaxDepth; d++ {
				qd[d] = 0
			}
			if i+1 < MaxDepth {
				qd[i+1] = base(i + 1)
			}
		}
	}

	var diff int64
	for d := 0; d < MaxDepth; d++ {
		if diff < maxInterval {
			diff = diff*int64(base(d)) + int64(qd[d]) - int64(pd[d])
		}
		if diff < 0 {
			return "", invalidf(CodeBadOp, "neighbours out of order: %v !< %v", p, q)
		}
		interval := uint64(diff - 1)
		if diff < 2 {
			continue
		}
		step := min(boundary, interval)
		delta := 1 + rng.Uint64()%step
		plus := boundaryPlus(d)
		if lastDigit(&pd, &qd, d, delta, plus) == 0 {
			switch {
			case delta < interval:
				delta++
			case delta > 1:
				delta--
			default:
				continue
			}
		}
		var nd [MaxDepth]uint64
		if plus {
			copy(nd[:d+1], pd[:d+1])
			nd[d] += delta
			for j := d; j > 0 && nd[j] >= base(j); j-- {
				nd[j] -= base(j)
				nd[j-1]++
			}
		} else {
			copy(nd[:d+1], qd[:d+1])
			for j := d; j >= 0; j-- {
				if nd[j] >= delta {
					nd[j] -= delta
					break
				}
				nd[j] = nd[j] + base(j) - delta
				delta = 1
			}
		}
		return buildID(nd[:d+1], p, q, site, counter), nil
	}
	return "", invalidf(CodeExhausted, "no identifier left between %v and %v", p, q)
}

// lastDigit is the digit at depth d of the candidate delta away from the chosen bound.
func lastDigit(pd, qd *[MaxDepth]uint64, d int, delta uint64, plus bool) uint64 {
	b := base(d)
	if plus {
		return (pd[d] + delta) % b
	}
	return (qd[d] + b - delta%b) % b
}

// buildID gives each level of the digits nd a triple: the left neighbour's while nd follows p's
// path, else the right neighbour's while it follows q's, else (site, counter). Copying the
// neighbours' triples where the digits agree is what keeps p < id < q.
func buildID(nd []uint64, p, q ID, site SiteID, counter uint32) ID {
	np, nq := p.Depth(), q.Depth()
	b := make([]byte, 0, len(nd)*tripleSize)
	onP, onQ := true, q != ""
	for j, dg := range nd {
		switch {
		case onP && j < np && uint64(p.digit(j)) == dg:
			b = append(b, p[j*tripleSize:(j+1)*tripleSize]...)
			onQ = onQ && j < nq && p[j*tripleSize:(j+1)*tripleSize] == q[j*tripleSize:(j+1)*tripleSize]
		case onQ && j < nq && uint64(q.digit(j)) == dg:
			onP = false
			b = append(b, q[j*tripleSize:(j+1)*tripleSize]...)
		default:
			onP, onQ = false, false
			b = appendTriple(b, Triple{Digit: uint32(dg), Site: site, Counter: counter})
		}
	}
	return ID(b)
}
