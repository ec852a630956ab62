package eventlog

import (
	"encoding/binary"
	"slices"

	"github.com/palimpsest-editor/palimpsest/schemas"
)

// marks is a document's deduplication state: for each origin site, the
// highest op counter of that site in the document's history up to Seq, and the
// sequence of the event that carried it.
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
}

func newMarks() *marks { return &marks{Sites: map[uint32]siteMark{}} }

// fold applies one event of the document, at sequence seq.
func (m *marks) fold(seq uint64, site, counter uint32) {
	if seq > m.Seq {
		m.Seq = seq
	}
	if cur, ok := m.Sites[site]; !ok || counter > cur.Counter {
		m.Sites[site] = siteMark{Counter: counter, Seq: seq}
	}
}

const marksVersion = 1

// encode returns the stored form: version byte, uvarint Seq, uvarint count,
// then per site in ascending order uvarint site, counter and sequence.
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
	}
	return b
}

// decodeMarks parses the stored form; bad input is a schemas.ErrBadEvent or
// schemas.ErrUnsupportedVersion error, never a panic.
func decodeMarks(b []byte) (*marks, error) {
	if len(b) == 0 {
		return nil, schemas.Errorf(schemas.CodeBadEvent, nil, "marks: empty")
	}
	if b[0] != marksVersion {
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
		if bad || int64(site) <= prev {
			bad = true
			break
		}
		prev = int64(site)
		m.Sites[uint32(site)] = siteMark{Counter: uint32(counter), Seq: seq}
	}
	if bad || off != len(b) {
		return nil, schemas.Errorf(schemas.CodeBadEvent, nil, "marks: malformed at byte %d of %d", off, len(b))
	}
	return m, nil
}
