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
	dst = binary.AppendUvarint(dst, uint64(op.Len()))
	var prev key
	i := 0
	var one [1]Run
	var digit [1]uint32
	runs := op.runs
	if op.single() {
		digit[0] = op.one.last.digit
		one[0] = op.one.asRun(digit[:])
		runs = one[:]
	}
	for _, r := range runs {
		depth := r.Prefix.Depth() + 1
		for j := range r.Digits {
			own := op.Counter
			if op.Kind == OpInsert {
				own += uint32(i)
			}
			i++
			k := r.key(j)
			shared := depth - 1 // a run's identifiers differ only in their last level
			if j == 0 {
				shared = sharedKeyLevels(prev, k)
			}
			dst = binary.AppendUvarint(dst, uint64(shared))
			dst = binary.AppendUvarint(dst, uint64(depth-shared))
			for l := shared; l < depth; l++ {
				t := k.levelAt(l)
				dst = binary.AppendUvarint(dst, uint64(t.digit))
				if op.Kind == OpInsert && l == depth-1 {
					continue
				}
				dst = binary.AppendUvarint(dst, uint64(t.site^op.Site))
				dst = binary.AppendVarint(dst, int64(t.counter)-int64(own))
			}
			prev = k
		}
	}
	if op.Kind == OpInsert {
		dst = binary.AppendUvarint(dst, uint64(len(op.Text)))
		dst = append(dst, op.Text...)
	}
	return dst
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
	// Identifiers are decoded into cur, one after another, and grouped into runs; a run's
	// prefix is cut from one string of all the prefixes.
	var cur, prefixes []byte
	type pending struct{ start, end int } // a run's prefix in prefixes
	var spans []pending
	b := newOpBuilder(n)
	var last key // the previous identifier, with its prefix not yet a string
	for i := 0; i < n && r.err == nil; i++ {
		own := op.Counter + uint32(i)
		if op.Kind == OpDelete {
			own = op.Counter
		}
		shared, fresh := r.uvarint(), r.uvarint()
		if shared > uint64(len(cur))/tripleSize || fresh == 0 || shared+fresh > MaxDepth {
			r.fail(CodeBadID, "identifier %d: %d shared + %d new levels", i, shared, fresh)
			break
		}
		cur = cur[:shared*tripleSize]
		for l := uint64(0); l < fresh; l++ {
			t := level{digit: r.u32("digit"), site: op.Site, counter: own}
			if op.Kind == OpDelete || l < fresh-1 {
				t.site ^= SiteID(r.u32("site"))
				c := int64(own) + r.varint()
				if c < 0 || c > 1<<32-1 {
					r.fail(CodeBadID, "identifier %d: counter %d out of range", i, c)
				}
				t.counter = uint32(c)
			}
			cur = appendLevel(cur, t)
		}
		p := cur[:len(cur)-tripleSize]
		k := key{last: levelOf(string(cur[len(cur)-tripleSize:]))}
		if m := len(b.runs); m > 0 {
			sp := spans[m-1]
			rr := &b.runs[m-1]
			if k.last.site == rr.Site && k.last.counter == rr.Counter+uint32(len(rr.Digits)) &&
				k.last.digit > last.last.digit && string(p) == string(prefixes[sp.start:sp.end]) {
				b.digits = append(b.digits, k.last.digit)
				rr.Digits = b.digits[len(b.digits)-len(rr.Digits)-1 : len(b.digits) : len(b.digits)]
				last = k
				continue
			}
		}
		start := len(prefixes)
		if m := len(spans); m > 0 && string(p) == string(prefixes[spans[m-1].start:spans[m-1].end]) {
			start = spans[m-1].start // the same prefix as the run before: share it
		} else {
			prefixes = append(prefixes, p...)
		}
		spans = append(spans, pending{start, start + len(p)})
		b.digits = append(b.digits, k.last.digit)
		b.runs = append(b.runs, Run{Site: k.last.site, Counter: k.last.counter,
			Digits: b.digits[len(b.digits)-1 : len(b.digits) : len(b.digits)]})
		last = k
	}
	if op.Kind == OpInsert {
		op.Text = string(r.bytes(r.uvarint()))
	}
	if r.err != nil {
		return Op{}, r.err
	}
	all := string(prefixes)
	for i, sp := range spans {
		b.runs[i].Prefix = ID(all[sp.start:sp.end])
	}
	op = NewOpFromRuns(op.Kind, op.Site, op.Counter, b.runs, op.Text)
	if err := op.Validate(); err != nil {
		return Op{}, err
	}
	op.checked = true
	return op, nil
}
