package eventlog

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

func TestMarksRoundTrip(t *testing.T) {
	m := newMarks()
	m.fold(10, 7, 3, 4)
	m.fold(12, 7, 2, 1) // Lower counter: the mark stays.
	m.fold(15, 1, 9, 0) // Span unknown.
	m.fold(20, 4000000000, 1, 1)
	if m.Seq != 20 || m.Sites[7] != (siteMark{Counter: 3, Seq: 10, End: 6}) {
		t.Fatalf("fold: %+v", m)
	}
	for _, c := range []struct {
		site  uint32
		next  uint32
		known bool
	}{{7, 7, true}, {1, 0, false}, {4000000000, 2, true}, {99, 1, true}} {
		if n, ok := m.next(c.site); n != c.next || ok != c.known {
			t.Errorf("next(%d) = %d, %v; want %d, %v", c.site, n, ok, c.next, c.known)
		}
	}
	got, err := decodeMarks(m.encode())
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	// Version 1 (no End) still reads, with every End unknown.
	v1, err := decodeMarks([]byte{1, 20, 1, 7, 3, 10})
	if err != nil || v1.Sites[7] != (siteMark{Counter: 3, Seq: 10}) {
		t.Fatalf("version 1: %+v %v", v1, err)
	}
	for _, bad := range [][]byte{nil, {3}, {2}, {1}, {1, 5, 1, 1, 1}, {1, 5, 2, 2, 1, 1, 1, 1, 1}, append(m.encode(), 0)} {
		if _, err := decodeMarks(bad); !errors.Is(err, schemas.ErrBadEvent) && !errors.Is(err, schemas.ErrUnsupportedVersion) {
			t.Errorf("decodeMarks(%x) = %v", bad, err)
		}
	}
}

func FuzzDecodeMarks(f *testing.F) {
	m := newMarks()
	m.fold(3, 1, 1, 1)
	m.fold(9, 2, 5, 3)
	f.Add(m.encode())
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMarks(b)
		if err != nil {
			if schemas.CodeOf(err) == 0 {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := decodeMarks(m.encode())
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func TestCheckOrder(t *testing.T) {
	blocked := map[uint32]uint32{1: 5}
	if err := checkOrder("d", blocked, []Op{{Site: 1, Counter: 6}}); !errors.Is(err, schemas.ErrOutOfOrder) {
		t.Errorf("op after a failed one: %v", err)
	}
	if err := checkOrder("d", blocked, []Op{{Site: 1, Counter: 5}, {Site: 1, Counter: 6}, {Site: 2, Counter: 9}}); err != nil {
		t.Errorf("resend from the failed op: %v", err)
	}
}

// FuzzDecodeEvent: a stored message of any shape decodes to an event or a
// typed error, never a panic.
func FuzzDecodeEvent(f *testing.F) {
	ev := schemas.Event{Type: schemas.EventOp, Doc: "d", Site: 1, Counter: 1, OpID: "1-1", Payload: []byte("x")}
	b, _ := ev.MarshalBinary()
	f.Add(uint64(5), "p.p.3.doc.d", "4", b)
	f.Add(uint64(5), "p.p.x.doc.d", "^", b)
	f.Add(uint64(0), "", "", []byte{})
	l := &Log{subj: Subjects{Prefix: "p", Partitions: 8}}
	f.Fuzz(func(t *testing.T, seq uint64, subject, prev string, data []byte) {
		e, err := l.decode(seq, subject, nats.Header{hdrPrev: []string{prev}}, data, time.Time{})
		if err != nil && schemas.CodeOf(err) != schemas.CodeBadEvent {
			t.Fatalf("untyped error %v", err)
		}
		if err == nil && e.PrevSeq >= seq {
			t.Fatalf("prev %d not before seq %d", e.PrevSeq, seq)
		}
	})
}
