package crdt

// elem is one element of a run: its identifier's last digit and its code point.
type elem struct {
	digit uint32
	r     rune
}

// run is consecutive elements: element i has the identifier prefix followed by the level
// (elems[i].digit, site, counter+i). Digits strictly increase; a run is never empty.
type run struct {
	prefix  string
	site    SiteID
	counter uint32
	elems   []elem
}

func (r *run) key(i int) key {
	return key{r.prefix, level{r.elems[i].digit, r.site, r.counter + uint32(i)}}
}

func (r *run) lastKey() key { return r.key(len(r.elems) - 1) }

// extends reports whether k can join the end of r.
func (r *run) extends(k key) bool {
	n := len(r.elems)
	return n < runCap && k.last.site == r.site && k.last.counter == r.counter+uint32(n) &&
		k.last.digit > r.elems[n-1].digit && k.prefix == r.prefix
}

// locate returns how many of r's elements sort before k, and whether k is the next one.
func (r *run) locate(k key) (int, bool) {
	lo, hi := 0, len(r.elems)
	if k.prefix == r.prefix {
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if (level{r.elems[m].digit, r.site, r.counter + uint32(m)}).cmp(k.last) < 0 {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return lo, lo < len(r.elems) && r.elems[lo].digit == k.last.digit &&
			r.site == k.last.site && r.counter+uint32(lo) == k.last.counter
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if cmpKeys(r.key(m), k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, false // equal identifiers have equal prefixes
}
