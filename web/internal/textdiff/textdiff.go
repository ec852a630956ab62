// Package textdiff computes the edits that turn one sequence of code points
// into another (Myers' O(ND) diff), for the browser editor's restore action:
// the document's current text is edited into an older version's text by
// ordinary CRDT ops, appended as a new version, so history is never rewritten.
//
//	for _, e := range textdiff.Edits([]rune(now), []rune(then)) {
//		// e.Pos is a code-point position in the text as the earlier edits left it
//		doc.Delete(e.Pos, e.Del); doc.Insert(e.Pos, e.Ins)
//	}
package textdiff

// Edit replaces Del code points at Pos with Ins. Edits returned together
// apply in order, each to the text the previous one left.
type Edit struct {
	Pos int
	Del int
	Ins string
}

// Edits returns the edits that turn a into b, in ascending position order,
// adjacent deletions and insertions merged into one edit. Equal inputs give
// none. Its cost is O((len(a)+len(b))·D) time and O(D²) memory for D
// differences, after the common prefix and suffix are trimmed.
func Edits(a, b []rune) []Edit {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	a, b = a[pre:len(a)-suf], b[pre:len(b)-suf]
	ops := script(a, b) // per element: '=', '-' (from a) or '+' (from b)
	var out []Edit
	pos, ia, ib := pre, 0, 0
	for i := 0; i < len(ops); {
		if ops[i] == '=' {
			pos++
			ia++
			ib++
			i++
			continue
		}
		e := Edit{Pos: pos}
		var ins []rune
		for ; i < len(ops) && ops[i] != '='; i++ {
			if ops[i] == '-' {
				e.Del++
				ia++
			} else {
				ins = append(ins, b[ib])
				ib++
			}
		}
		e.Ins = string(ins)
		pos += len(ins)
		out = append(out, e)
	}
	return out
}

// script returns Myers' shortest edit script from a to b as one byte per
// step: '=' keep, '-' delete from a, '+' insert from b.
func script(a, b []rune) []byte {
	n, m := len(a), len(b)
	if n == 0 || m == 0 {
		s := make([]byte, 0, n+m)
		for range n {
			s = append(s, '-')
		}
		for range m {
			s = append(s, '+')
		}
		return s
	}
	max := n + m
	off := max
	v := make([]int, 2*max+2)
	var trace [][]int
	for d := 0; d <= max; d++ {
		trace = append(trace, append([]int(nil), v[off-d:off+d+2]...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x++
				y++
			}
			v[off+k] = x
			if x >= n && y >= m {
				return backtrack(trace, a, b, d)
			}
		}
	}
	panic("textdiff: unreachable")
}

// backtrack walks the saved frontiers from (len(a), len(b)) to (0, 0).
// trace[d] holds v[-d..d+1] as it was before step d.
func backtrack(trace [][]int, a, b []rune, dEnd int) []byte {
	x, y := len(a), len(b)
	var rev []byte
	for d := dEnd; d > 0; d-- {
		vd := trace[d] // frontier after step d-1, indexed k+d
		at := func(k int) int { return vd[k+d] }
		k := x - y
		var prevK int
		if k == -d || (k != d && at(k-1) < at(k+1)) {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevX := at(prevK)
		prevY := prevX - prevK
		for x > prevX && y > prevY {
			rev = append(rev, '=')
			x--
			y--
		}
		if x == prevX {
			rev = append(rev, '+')
		} else {
			rev = append(rev, '-')
		}
		x, y = prevX, prevY
	}
	for x > 0 && y > 0 {
		rev = append(rev, '=')
		x--
		y--
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev
}
