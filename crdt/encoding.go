package crdt

import "encoding/binary"

// Binary encodings start with a version byte. A decoder accepts exactly the versions it knows
// and returns an *InvalidError for anything else; it validates every field and never panics.
const (
	opVersion       = 1
	snapshotVersion = 1
)

// AppendOp appends the binary encoding of op to dst.
//
// Layout (v1): version, kind, uvarint site, uvarint counter, uvarint n, then n identifiers,
// each as the number of levels it shares with the previous identifier of the op, the number
// of levels that follow, and those levels; an insert then carries its text as length-prefixed
// UTF-8. A level is its digit, its site XOR the op's site, and its counter minus the element's
// own counter (zigzag); an insert's last levels omit site and counter, which its origin fixes.
func AppendOp(dst []byte, op *Op) []byte {
	dst = append(dst, opVersion, byte(op.Kind))
	dst = binary.AppendUvarint(dst, uint64(op.Site))
	dst = binary.AppendUvarint(dst, uint64(op.Counter))
	dst = binary.AppendUvarint(dst, uint64(len(op.IDs)))
	var prev ID
	for i, id := range op.IDs {
		own := op.Counter
		if op.Kind == OpInsert {
			own += uint32(i)
		}
		shared := sharedLevels(prev, id)
		dst = binary.AppendUvarint(dst, uint64(shared))
		dst = binary.AppendUvarint(dst, uint64(id.Depth()-shared))
		for l := shared; l < id.Depth(); l++ {
			t := id.Level(l)
			dst = binary.AppendUvarint(dst, uint64(t.Digit))
			if op.Kind == OpInsert && l == id.Depth()-1 {
				continue
			}
			dst = binary.AppendUvarint(dst, uint64(t.Site^op.Site))
			dst = binary.AppendVarint(dst, int64(t.Counter)-int64(own))
		}
		prev = id
	}
	if op.Kind == OpInsert {
		dst = binary.AppendUvarint(dst, uint64(len(op.Text)))
		dst = append(dst, op.Text...)
	}
	return dst
}

// sharedLevels counts the leading levels a and b have in common.
func sharedLevels(a, b ID) int {
	n := min(len(a), len(b)) / tripleSize
	for l := 0; l < n; l++ {
		if a[l*tripleSize:(l+1)*tripleSize] != b[l*tripleSize:(l+1)*tripleSize] {
			return l
		}
	}
	return n
}

// DecodeOp decodes one op written by AppendOp and validates it (Op.Validate). The whole input
// must be the op: trailing bytes are an error.
func DecodeOp(data []byte) (Op, error) {
	r := reader{buf: data}
	op, err := r.op()
	if err != nil {
		return Op{}, err
	}
	if len(r.buf) != 0 {
		return Op{}, invalidf(CodeTruncated, "%d bytes after the op", len(r.buf))
	}
	return op, nil
}

// reader consumes an encoding; the first failure sticks in err.
type reader struct {
	buf []byte
	err error
}

func (r *reader) fail(code Code, format string, args ...any) {
	if r.err == nil {
		r.err = invalidf(code, format, args...)
	}
}

func (r *reader) byte() byte {
	if len(r.buf) == 0 {
		r.fail(CodeTruncated, "input ends early")
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail(CodeTruncated, "bad or missing varint")
		r.buf = nil
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.fail(CodeTruncated, "bad or missing varint")
		r.buf = nil
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// u32 reads a uvarint that must fit 32 bits.
func (r *reader) u32(what string) uint32 {
	v := r.uvarint()
	if v > 1<<32-1 {
		r.fail(CodeBadOp, "%s %d over 32 bits", what, v)
		return 0
	}
	return uint32(v)
}

// count reads an element count, bounded by limit and by the bytes left (each element takes at
// least minBytes), so a hostile count never makes the decoder allocate.
func (r *reader) count(limit, minBytes int, what string) int {
	v := r.uvarint()
	if r.err == nil && (v > uint64(limit) || v*uint64(minBytes) > uint64(len(r.buf))) {
		r.fail(CodeTooLarge, "%s count %d over the limit or the input", what, v)
	}
	if r.err != nil {
		return 0
	}
	return int(v)
}

func (r *reader) bytes(n uint64) []byte {
	if n > uint64(len(r.buf)) {
		r.fail(CodeTruncated, "%d bytes wanted, %d left", n, len(r.buf))
		r.buf = nil
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

func (r *reader) op() (Op, error) {
	if v := r.byte(); r.err == nil && v != opVersion {
		return Op{}, invalidf(CodeBadVersion, "op encoding version %d, want %d", v, opVersion)
	}
	op := Op{Kind: OpKind(r.byte())}
	op.Site = SiteID(r.u32("site"))
	op.Counter = r.u32("counter")
	n := r.count(MaxOpElements, 3, "identifier")
	if r.err != nil {
		return Op{}, r.err
	}
	if op.Kind != OpInsert && op.Kind != OpDelete {
		return Op{}, invalidf(CodeBadOp, "unknown op kind %d", op.Kind)
	}
	// All identifiers share one backing string: one allocation for the whole op.
	raw := make([]byte, 0, n*2*tripleSize)
	ends := make([]int, n)
	prevStart, prevEnd := 0, 0
	for i := 0; i < n && r.err == nil; i++ {
		own := op.Counter + uint32(i)
		if op.Kind == OpDelete {
			own = op.Counter
		}
		shared, fresh := r.uvarint(), r.uvarint()
		if shared > uint64(prevEnd-prevStart)/tripleSize || fresh == 0 || shared+fresh > MaxDepth {
			r.fail(CodeBadID, "identifier %d: %d shared + %d new levels", i, shared, fresh)
			break
		}
		start := len(raw)
		raw = append(raw, raw[prevStart:prevStart+int(shared)*tripleSize]...)
		for l := uint64(0); l < fresh; l++ {
			t := Triple{Digit: r.u32("digit"), Site: op.Site, Counter: own}
			if op.Kind == OpDelete || l < fresh-1 {
				t.Site ^= SiteID(r.u32("site"))
				c := int64(own) + r.varint()
				if c < 0 || c > 1<<32-1 {
					r.fail(CodeBadID, "identifier %d: counter %d out of range", i, c)
				}
				t.Counter = uint32(c)
			}
			raw = appendTriple(raw, t)
		}
		prevStart, prevEnd = start, len(raw)
		ends[i] = len(raw)
	}
	if op.Kind == OpInsert {
		op.Text = string(r.bytes(r.uvarint()))
	}
	if r.err != nil {
		return Op{}, r.err
	}
	all := string(raw)
	op.IDs = make([]ID, n)
	start := 0
	for i, end := range ends {
		op.IDs[i] = ID(all[start:end])
		start = end
	}
	if err := op.Validate(); err != nil {
		return Op{}, err
	}
	return op, nil
}
