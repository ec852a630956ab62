package crdt

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"slices"
	"sync"
	"unicode/utf8"
)

// MaxSnapshotBytes bounds a snapshot's decompressed size, so a hostile input cannot make the
// decoder allocate without limit.
const MaxSnapshotBytes = 1 << 30

// AppendSnapshot appends the encoding of the document's whole state to dst: its clock, every
// element (identifier and code point) and whatever is held for later. It does not include the
// local site or randomness: LoadSnapshot takes those.
//
// Layout (v1): a version byte, then a DEFLATE stream of columns, each length-prefixed: the
// clock; the text as UTF-8; per element the levels it shares with the previous identifier and
// how many follow; the new levels' digits (the first one as a difference from the previous
// identifier's digit at that depth), sites (XOR the previous level's site) and counters
// (difference from the previous level's counter); the held deletes; the held ops. Columns keep
// alike values together, which is what lets DEFLATE shrink identifiers to about a byte each.
func (d *Doc) AppendSnapshot(dst []byte) []byte {
	var clock, text, shape, digits, sites, counters, doomed, held []byte
	all := d.Clock()
	sitesSorted := make([]SiteID, 0, len(all))
	for s := range all {
		sitesSorted = append(sitesSorted, s)
	}
	slices.Sort(sitesSorted)
	clock = binary.AppendUvarint(clock, uint64(len(sitesSorted)))
	var prevSite SiteID
	for _, s := range sitesSorted {
		clock = binary.AppendUvarint(clock, uint64(s-prevSite))
		clock = binary.AppendUvarint(clock, uint64(all[s]))
		prevSite = s
	}

	var prev key
	var lastSite SiteID
	var lastCounter uint32
	n := 0
	d.elems.eachRun(func(r *run) bool {
		depth := len(r.prefix)/tripleSize + 1
		for i, e := range r.elems {
			n++
			text = utf8.AppendRune(text, e.r)
			k := r.key(i)
			shared := depth - 1 // a run's identifiers differ only in their last level
			if i == 0 {
				shared = sharedKeyLevels(prev, k)
			}
			shape = binary.AppendUvarint(shape, uint64(shared)<<7|uint64(depth-shared))
			for l := shared; l < depth; l++ {
				t := k.levelAt(l)
				if l == shared && l < prev.depth() {
					digits = binary.AppendVarint(digits, int64(t.digit)-int64(prev.digitAt(l)))
				} else {
					digits = binary.AppendUvarint(digits, uint64(t.digit))
				}
				sites = binary.AppendUvarint(sites, uint64(t.site^lastSite))
				counters = binary.AppendVarint(counters, int64(t.counter)-int64(lastCounter))
				lastSite, lastCounter = t.site, t.counter
			}
			prev = k
		}
		return true
	})

	dots := make([]Dot, 0, len(d.doomed))
	for dot := range d.doomed {
		dots = append(dots, dot)
	}
	slices.SortFunc(dots, func(a, b Dot) int { return d.doomed[a].Compare(d.doomed[b]) })
	doomed = binary.AppendUvarint(doomed, uint64(len(dots)))
	for _, dot := range dots {
		id := d.doomed[dot]
		doomed = binary.AppendUvarint(doomed, uint64(len(id)))
		doomed = append(doomed, id...)
	}

	var heldOps []*Op
	for _, s := range sortedKeys(d.held) {
		for i := range d.held[s] {
			heldOps = append(heldOps, &d.held[s][i])
		}
	}
	held = binary.AppendUvarint(held, uint64(len(heldOps)))
	var opBuf []byte
	for _, op := range heldOps {
		opBuf = AppendOp(opBuf[:0], op)
		held = binary.AppendUvarint(held, uint64(len(opBuf)))
		held = append(held, opBuf...)
	}

	out := &appender{b: append(dst, snapshotVersion)}
	w := compressors.Get().(*flate.Writer)
	w.Reset(out)
	var hdr []byte
	hdr = binary.AppendUvarint(hdr, uint64(n))
	w.Write(hdr)
	for _, col := range [][]byte{clock, text, shape, digits, sites, counters, doomed, held} {
		w.Write(binary.AppendUvarint(nil, uint64(len(col))))
		w.Write(col)
	}
	w.Close()
	dst, out.b = out.b, nil // the pooled compressor keeps out, not the snapshot
	compressors.Put(w)
	return dst
}

// compressors and decompressors are reused: a DEFLATE compressor holds about a megabyte of
// tables, which encoding a small document's state would otherwise allocate every time. The
// pools change no result; they only save allocations.
var (
	compressors = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.DefaultCompression)
		return w
	}}
	decompressors = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}
)

// appender is an io.Writer that appends to b.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

func sortedKeys[V any](m map[SiteID]V) []SiteID {
	keys := make([]SiteID, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// LoadSnapshot decodes a state written by AppendSnapshot into a new Doc that edits locally as
// site with randomness rng. It validates everything (versions, identifiers, their order, the
// clock covering every element) and returns an *InvalidError on any bad input.
func LoadSnapshot(data []byte, site SiteID, rng Rand, opts ...Option) (*Doc, error) {
	if len(data) == 0 {
		return nil, invalidf(CodeTruncated, "empty snapshot")
	}
	if data[0] != snapshotVersion {
		return nil, invalidf(CodeBadVersion, "snapshot version %d, want %d", data[0], snapshotVersion)
	}
	fr := decompressors.Get().(io.ReadCloser)
	fr.(flate.Resetter).Reset(bytes.NewReader(data[1:]), nil)
	body, err := readAll(io.LimitReader(fr, MaxSnapshotBytes+1), len(data))
	fr.(flate.Resetter).Reset(bytes.NewReader(nil), nil)
	decompressors.Put(fr)
	if err != nil {
		return nil, invalidf(CodeTruncated, "snapshot body: %v", err)
	}
	if len(body) > MaxSnapshotBytes {
		return nil, invalidf(CodeTooLarge, "snapshot over %d bytes", MaxSnapshotBytes)
	}
	d := New(site, rng, opts...)
	if err := d.decodeState(body); err != nil {
		return nil, err
	}
	return d, nil
}

// readAll is io.ReadAll for a body that DEFLATE shrank to n bytes: sized at first for 8n (the
// traces' snapshots shrink 4.5 to 7 times), it is read with few copies.
func readAll(r io.Reader, n int) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, min(8*n, MaxSnapshotBytes)+bytes.MinRead))
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

func (d *Doc) decodeState(body []byte) error {
	top := reader{buf: body}
	n := top.count(MaxSnapshotBytes, 1, "element")
	var cols [8]reader
	for i := range cols {
		cols[i].buf = top.bytes(top.uvarint())
	}
	if top.err == nil && len(top.buf) != 0 {
		top.fail(CodeTruncated, "%d bytes after the snapshot", len(top.buf))
	}
	if top.err != nil {
		return top.err
	}
	clock, text, shape, digits, sites, counters, doomed, held :=
		&cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &cols[6], &cols[7]

	sitesN := clock.count(1<<24, 2, "clock entry")
	var site uint64
	for i := 0; i < sitesN && clock.err == nil; i++ {
		delta := clock.uvarint()
		if i > 0 && delta == 0 {
			clock.fail(CodeBadOp, "clock lists a site twice")
		}
		site += delta
		if site > 1<<32-1 {
			clock.fail(CodeBadOp, "clock site over 32 bits")
		}
		d.setSeen(SiteID(site), clock.u32("clock counter"))
	}
	if clock.err != nil {
		return clock.err
	}

	if !utf8.Valid(text.buf) || utf8.RuneCount(text.buf) != n {
		return invalidf(CodeBadText, "snapshot text is not %d valid code points", n)
	}
	// Elements are decoded into cur, checked against the previous one (prev), and grouped
	// into runs that share one elems array and, where they can, one prefix string.
	all := make([]elem, n)
	runs := make([]run, 0, n/8+1) // a first guess, which spares most of the growing
	var prefix string
	var cur, prev []byte
	var lastSite SiteID
	var lastCounter uint32
	var lv level
	text2 := string(text.buf)
	for i := 0; i < n; i++ {
		sh := shape.uvarint()
		shared, fresh := sh>>7, sh&127
		prevDepth := uint64(len(cur)) / tripleSize
		if shared > prevDepth || fresh == 0 || shared+fresh > MaxDepth {
			shape.fail(CodeBadID, "element %d: %d shared + %d new levels", i, shared, fresh)
		}
		if shape.err != nil || digits.err != nil || sites.err != nil || counters.err != nil {
			break
		}
		for l := shared; l < shared+fresh; l++ {
			var dg int64
			if l == shared && l < prevDepth {
				dg = int64(binary.BigEndian.Uint32(cur[l*tripleSize:])) + digits.varint()
			} else {
				dg = int64(digits.uvarint())
			}
			lastSite ^= SiteID(sites.u32("site"))
			c := int64(lastCounter) + counters.varint()
			if dg < 0 || dg > 1<<32-1 || c < 0 || c > 1<<32-1 || uint64(dg) >= base(int(l)) {
				digits.fail(CodeBadID, "element %d: level out of range", i)
				break
			}
			lastCounter = uint32(c)
			if l == shared {
				cur = cur[:shared*tripleSize]
			}
			lv = level{uint32(dg), lastSite, lastCounter}
			cur = appendLevel(cur, lv)
		}
		if digits.err != nil {
			break
		}
		// lv is the last level: fresh > 0.
		switch {
		case lv.digit == 0:
			return invalidf(CodeBadID, "element %d ends in digit 0", i)
		case i > 0 && bytes.Compare(prev, cur) >= 0:
			return invalidf(CodeBadID, "snapshot elements out of order at %d", i)
		case d.seen(lv.site) < lv.counter:
			return invalidf(CodeBadOp, "element %d (%d:%d) is newer than the clock", i, lv.site, lv.counter)
		}
		c, size := utf8.DecodeRuneInString(text2)
		text2 = text2[size:]
		all[i] = elem{lv.digit, c}
		p := cur[:len(cur)-tripleSize]
		if m := len(runs); m > 0 {
			r := &runs[m-1]
			if k := len(r.elems); k < runCap && lv.site == r.site && lv.counter == r.counter+uint32(k) &&
				lv.digit > r.elems[k-1].digit && string(p) == r.prefix {
				r.elems = all[i-k : i+1 : i+1]
				prev = append(prev[:0], cur...)
				continue
			}
		}
		if string(p) != prefix {
			prefix = string(p)
		}
		runs = append(runs, run{prefix: prefix, site: lv.site, counter: lv.counter, elems: all[i : i+1 : i+1]})
		prev = append(prev[:0], cur...)
	}
	for _, c := range []*reader{shape, digits, sites, counters} {
		if c.err != nil {
			return c.err
		}
		if len(c.buf) != 0 {
			return invalidf(CodeTruncated, "%d bytes after an element column", len(c.buf))
		}
	}
	doomedN := doomed.count(MaxSnapshotBytes, tripleSize, "held delete")
	for i := 0; i < doomedN && doomed.err == nil; i++ {
		id := ID(doomed.bytes(doomed.uvarint()))
		if doomed.err != nil {
			break
		}
		if err := id.Validate(); err != nil {
			return err
		}
		o := id.Origin()
		if d.seen(o.Site) >= o.Counter {
			return invalidf(CodeBadOp, "held delete of %v, which the clock has applied", id)
		}
		d.doomed[o] = id
	}
	if doomed.err != nil {
		return doomed.err
	}

	heldN := held.count(MaxSnapshotBytes, 4, "held op")
	for i := 0; i < heldN && held.err == nil; i++ {
		b := held.bytes(held.uvarint())
		if held.err != nil {
			break
		}
		op, err := DecodeOp(b)
		if err != nil {
			return err
		}
		if op.Counter <= d.seen(op.Site)+1 {
			return invalidf(CodeBadOp, "held op %d:%d is not ahead of the clock", op.Site, op.Counter)
		}
		d.hold(op)
	}
	if held.err != nil {
		return held.err
	}
	for _, c := range []*reader{clock, doomed, held} {
		if len(c.buf) != 0 {
			return invalidf(CodeTruncated, "%d bytes after a column", len(c.buf))
		}
	}
	d.elems.build(runs)
	return nil
}
