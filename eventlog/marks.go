package eventlog

import (
	"encoding/binary"
	"slices"

	"github.com/palimpsest-editor/palimpsest/schemas"
)

// marks is a document's deduplication state: for each origin site, the
// highest op counter of that site in the document's history up to Seq, the
// sequence of the event that carried it, and the last counter that op spent
// (its End: an insert of k code points spends k counters), which says which
// counter the site's next op must have.
//
// Marks are a function of the log: marks(Seq) is computed by folding the
// document's events up to Seq, and they are never ahead of the log. The copy in
// the KV bucket may lag; it is brought up to date by reading the events after
// its Seq (repair). That makes a crash between an append and the write of the
// marks harmless.
type marks struct {
	Seq   uint64
	Sites map[uint32]siteMark
}

type siteMark struct {
	Counter uint32
	Seq     uint64
	// End is the last counter the op at Counter spent; 0 when unknown (the
	// op was appended without its span, see Op.Span, or the marks were
	// stored by a version that did not keep it). A site whose End is unknown
	// is not checked for counter gaps until its next op with a known span.
	End uint32
}

// next returns the counter site's next op must have and whether it is
// known: 1 for a site with no op in the document.
func (m *marks) next(site uint32) (uint32, bool) {
	sm, ok := m.Sites[site]
	switch {
	case !ok:
		return 1, true
	case sm.End == 0:
		return 0, false
	}
	return sm.End + 1, true
}

func newMarks() *marks { return &marks{Sites: map[uint32]siteMark{}} }

// fold applies one event of the document, at sequence seq, whose op spent
// span counters from counter on (span 0: unknown).
func (m *marks) fold(seq uint64, site, counter, span uint32) {
	if seq > m.Seq {
		m.Seq = seq
	}
	if cur, ok := m.Sites[site]; !ok || counter > cur.Counter {
		sm := siteMark{Counter: counter, Seq: seq}
		if span > 0 && uint64(counter)+uint64(span)-1 <= 1<<32-1 {
			sm.End = counter + span - 1
		}
		m.Sites[site] = sm
	}
}

// marksVersion is the version encode writes; decodeMarks also reads
// version 1, which has no End (it reads as unknown).
const marksVersion = 2

// encode returns the stored form: version byte, uvarint Seq, uvarint count,
// then per site in ascending order uvarint site, counter, sequence and
// End-Counter+1 (0: End unknown; version 1 has no such field).
func (m *marks) encode() []byte {
	sites := make([]uint32, 0, len(m.Sites))
	for s := range m.Sites {
		sites = append(sites, s)
	}
	slices.Sort(sites)
	b := make([]byte, 0, 12+len(sites)*12)
	b = append(b, marksVersion)
	b = binary.AppendUvarint(b, m.Seq)
	b = binary.AppendUvarint(b, uint64(len(sites)))
	for _, s := range sites {
		sm := m.Sites[s]
		b = binary.AppendUvarint(b, uint64(s))
		b = binary.AppendUvarint(b, uint64(sm.Counter))
		b = binary.AppendUvarint(b, sm.Seq)
		if sm.End == 0 {
			b = binary.AppendUvarint(b, 0)
		} else {
			b = binary.AppendUvarint(b, uint64(sm.End-sm.Counter)+1)
		}
	}
	return b
}

// decodeMarks parses the stored form; bad input is a schemas.ErrBadEvent or
// schemas.ErrUnsupportedVersion error, never a panic.
func decodeMarks(b []byte) (*marks, error) {
	if len(b) == 0 {
		return nil, schemas.Errorf(schemas.CodeBadEvent, nil, "marks: empty")
	}
	version := b[0]
	if version != 1 && version != marksVersion {
		return nil, schemas.Errorf(schemas.CodeUnsupportedVersion, nil, "marks: version %d", b[0])
	}
	off := 1
	bad := false
	next := func(max uint64) uint64 {
		if bad {
			return 0
		}
		x, n := binary.Uvarint(b[off:])
		if n <= 0 || x > max {
			bad = true
			return 0
		}
		off += n
		return x
	}
	m := newMarks()
	m.Seq = next(^uint64(0))
	count := next(uint64(len(b))) // Each site takes at least 3 bytes: no huge allocation.
	prev := int64(-1)
	for i := uint64(0); i < count && !bad; i++ {
		site := next(1<<32 - 1)
		counter := next(1<<32 - 1)
		seq := next(m.Seq)
		var span uint64
		if version >= 2 {
			span = next(1<<32 - counter)
		}
		if bad || int64(site) <= prev {
			bad = true
			break
		}
		prev = int64(site)
		sm := siteMark{Counter: uint32(counter), Seq: seq}
		if span > 0 {
			sm.End = uint32(counter + span - 1)
		}
		m.Sites[uint32(site)] = sm
	}
	if bad || off != len(b) {
		return nil, schemas.Errorf(schemas.CodeBadEvent, nil, "marks: malformed at byte %d of %d", off, len(b))
	}
	return m, nil
}
