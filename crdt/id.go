package crdt

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// SiteID names one replica (one editing session). Two replicas of a document must never share a
// site ID; the server hands them out or checks them.
type SiteID uint32

// Dot names one element or one operation: the site that made it and that site's counter.
// Dots are unique: a site never reuses a counter.
type Dot struct {
	Site    SiteID
	Counter uint32
}

// Triple is one level of an LSEQ identifier: a digit in that level's base, and the site and
// counter that disambiguate concurrent allocations of the same digit.
type Triple struct {
	Digit   uint32
	Site    SiteID
	Counter uint32
}

const (
	// tripleSize is the bytes one Triple takes inside an ID: digit, site, counter, big-endian.
	tripleSize = 12
	// baseBits0 is log2 of the base at depth 0; the base doubles at every depth up to
	// 2^maxBaseBits, the most a uint32 digit holds, and stays there.
	baseBits0   = 10
	maxBaseBits = 31
	// MaxDepth is the deepest identifier allocated or accepted.
	MaxDepth = 64
)

// base returns the number of digits available at depth d (0-based): 2^(baseBits0+d), capped.
func base(d int) uint64 { return 1 << min(baseBits0+d, maxBaseBits) }

// ID is an LSEQ identifier: a path of Triples, stored as 12 big-endian bytes a level so that
// comparing two IDs as strings compares them lexicographically by (digit, site, counter) per
// level, a prefix sorting before its extensions. IDs are immutable and comparable with ==.
//
// A valid ID has 1..MaxDepth levels, every digit below its level's base, and a last digit that
// is not 0 (so an identifier can always be extended below it; see alloc).
type ID string

// MakeID builds an ID from its levels. It does not validate; see ID.Validate.
func MakeID(levels ...Triple) ID {
	b := make([]byte, 0, len(levels)*tripleSize)
	for _, t := range levels {
		b = appendTriple(b, t)
	}
	return ID(b)
}

func appendTriple(b []byte, t Triple) []byte {
	b = binary.BigEndian.AppendUint32(b, t.Digit)
	b = binary.BigEndian.AppendUint32(b, uint32(t.Site))
	return binary.BigEndian.AppendUint32(b, t.Counter)
}

// Depth is the number of levels.
func (id ID) Depth() int { return len(id) / tripleSize }

// Level returns the triple at depth i; i must be below Depth.
func (id ID) Level(i int) Triple {
	s := id[i*tripleSize:]
	return Triple{
		Digit:   be32(s),
		Site:    SiteID(be32(s[4:])),
		Counter: be32(s[8:]),
	}
}

func (id ID) digit(i int) uint32 { return be32(id[i*tripleSize:]) }

func be32(s ID) uint32 {
	_ = s[3]
	return uint32(s[0])<<24 | uint32(s[1])<<16 | uint32(s[2])<<8 | uint32(s[3])
}

// Origin is the dot of the element this ID names: the site and counter of its last level.
func (id ID) Origin() Dot {
	t := id.Level(id.Depth() - 1)
	return Dot{Site: t.Site, Counter: t.Counter}
}

// Compare orders IDs: -1 if id sorts before o, 0 if equal, +1 after.
func (id ID) Compare(o ID) int { return strings.Compare(string(id), string(o)) }

// Validate reports whether id is a well-formed identifier, as an *InvalidError.
func (id ID) Validate() error {
	if len(id) == 0 || len(id)%tripleSize != 0 {
		return invalidf(CodeBadID, "identifier of %d bytes", len(id))
	}
	n := id.Depth()
	if n > MaxDepth {
		return invalidf(CodeBadID, "identifier depth %d over %d", n, MaxDepth)
	}
	for d := 0; d < n; d++ {
		if uint64(id.digit(d)) >= base(d) {
			return invalidf(CodeBadID, "digit %d at depth %d out of base %d", id.digit(d), d, base(d))
		}
	}
	if id.digit(n-1) == 0 {
		return invalidf(CodeBadID, "identifier ends in digit 0")
	}
	return nil
}

// String renders the ID as digit:site:counter levels joined by dots, for logs and tests.
func (id ID) String() string {
	var sb strings.Builder
	for i := 0; i < id.Depth(); i++ {
		if i > 0 {
			sb.WriteByte('.')
		}
		t := id.Level(i)
		fmt.Fprintf(&sb, "%d:%d:%d", t.Digit, t.Site, t.Counter)
	}
	return sb.String()
}
