package crdt

import (
	"encoding/binary"
	"math/bits"
	"strings"
)

// level is one Triple as the document holds it in memory. Levels order by digit, then site,
// then counter: the order of their 12 big-endian bytes inside an ID.
type level struct {
	digit   uint32
	site    SiteID
	counter uint32
}

func (a level) cmp(b level) int {
	switch {
	case a.digit != b.digit:
		return cmpU32(a.digit, b.digit)
	case a.site != b.site:
		return cmpU32(uint32(a.site), uint32(b.site))
	}
	return cmpU32(a.counter, b.counter)
}

func cmpU32(a, b uint32) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// levelOf decodes the level in the first 12 bytes of s.
func levelOf(s string) level {
	_ = s[tripleSize-1]
	return level{
		digit:   be32(ID(s)),
		site:    SiteID(be32(ID(s[4:]))),
		counter: be32(ID(s[8:])),
	}
}

func appendLevel(b []byte, l level) []byte {
	b = binary.BigEndian.AppendUint32(b, l.digit)
	b = binary.BigEndian.AppendUint32(b, uint32(l.site))
	return binary.BigEndian.AppendUint32(b, l.counter)
}

// key is an identifier held as its leading levels (bytes of an ID) and its last level, so that
// the identifiers of a run share one prefix string and a key costs no allocation. The zero key
// stands for "no identifier" (a document edge, an empty op): a real identifier never ends in
// digit 0.
type key struct {
	prefix string
	last   level
}

func keyOf(id ID) key {
	n := len(id) - tripleSize
	return key{prefix: string(id[:n]), last: levelOf(string(id[n:]))}
}

func (k key) none() bool { return k.last == level{} && k.prefix == "" }

// depth is the number of levels; 0 for the zero key.
func (k key) depth() int {
	if k.none() {
		return 0
	}
	return len(k.prefix)/tripleSize + 1
}

// levelAt returns level d < depth.
func (k key) levelAt(d int) level {
	if o := d * tripleSize; o < len(k.prefix) {
		return levelOf(k.prefix[o:])
	}
	return k.last
}

func (k key) digitAt(d int) uint32 {
	if o := d * tripleSize; o < len(k.prefix) {
		return be32(ID(k.prefix[o:]))
	}
	return k.last.digit
}

// id materializes the identifier.
func (k key) id() ID {
	var sb strings.Builder
	sb.Grow(len(k.prefix) + tripleSize)
	sb.WriteString(k.prefix)
	var b [tripleSize]byte
	sb.Write(appendLevel(b[:0], k.last))
	return ID(sb.String())
}

// cmpKeys orders keys as their identifiers order.
func cmpKeys(a, b key) int {
	if a.prefix == b.prefix {
		return a.last.cmp(b.last)
	}
	c, _ := cmpFrom(a, b, 0)
	return c
}

// cmpFrom is cmpKeys for keys whose identifiers are known to agree over their first skip
// bytes (a search that has narrowed k down to keys between two bounds knows that much: every
// identifier between them shares with k at least the bytes both bounds share with it). It also
// returns how many leading bytes the prefixes of a and b share, at least skip (or the shorter
// prefix's length, if less) and at most the shorter prefix: a lower bound on what their
// identifiers share.
func cmpFrom(a, b key, skip int) (c, shared int) {
	n := min(len(a.prefix), len(b.prefix))
	o := min(skip, n)
	for ; o+8 <= n; o += 8 {
		if x, y := be64(a.prefix[o:]), be64(b.prefix[o:]); x != y {
			shared = o + bits.LeadingZeros64(x^y)/8
			if x < y {
				return -1, shared
			}
			return 1, shared
		}
	}
	for ; o < n; o++ {
		if x, y := a.prefix[o], b.prefix[o]; x != y {
			if x < y {
				return -1, o
			}
			return 1, o
		}
	}
	// The shorter prefix is a prefix of the longer one: compare the shorter key's last level
	// with the longer one's level there; if they are equal the shorter key is a prefix of the
	// longer.
	switch {
	case len(a.prefix) == len(b.prefix):
		return a.last.cmp(b.last), n
	case len(a.prefix) < len(b.prefix):
		if c := a.last.cmp(levelOf(b.prefix[n:])); c != 0 {
			return c, n
		}
		return -1, n
	}
	if c := levelOf(a.prefix[n:]).cmp(b.last); c != 0 {
		return c, n
	}
	return 1, n
}

// cmpBytes is strings.Compare for strings of equal length, eight bytes at a time, written so
// that its arguments do not escape (the runtime's compare makes them), which keeps callers'
// runs on their stacks.
func cmpBytes(a, b string) int {
	o := 0
	for ; o+8 <= len(a); o += 8 {
		if x, y := be64(a[o:]), be64(b[o:]); x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	for ; o < len(a); o++ {
		if a[o] != b[o] {
			if a[o] < b[o] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func be64(s string) uint64 {
	_ = s[7]
	return uint64(s[0])<<56 | uint64(s[1])<<48 | uint64(s[2])<<40 | uint64(s[3])<<32 |
		uint64(s[4])<<24 | uint64(s[5])<<16 | uint64(s[6])<<8 | uint64(s[7])
}

// sharedKeyLevels counts the leading levels a and b have in common.
func sharedKeyLevels(a, b key) int {
	if a.none() || b.none() {
		return 0
	}
	pa, pb := len(a.prefix), len(b.prefix)
	m := min(pa, pb)
	if a.prefix[:m] != b.prefix[:m] {
		for o := 0; ; o += tripleSize {
			if a.prefix[o:o+tripleSize] != b.prefix[o:o+tripleSize] {
				return o / tripleSize
			}
		}
	}
	// The prefixes agree over m bytes: compare the shorter key's last level with the other's.
	switch {
	case pa == pb && a.last == b.last:
		return pa/tripleSize + 1
	case pa < pb && a.last == levelOf(b.prefix[pa:]):
		return pa/tripleSize + 1
	case pb < pa && b.last == levelOf(a.prefix[pb:]):
		return pb/tripleSize + 1
	}
	return m / tripleSize
}
