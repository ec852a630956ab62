package schemas

import (
	"reflect"
	"testing"
)

func sampleMessages() map[FrameType]Message {
	return map[FrameType]Message{
		FrameHello:          &Hello{Token: "t.o.k", Doc: "notes", LastSeq: 42, Site: 7, Batch: 3, Pending: [][]byte{{1, 2}, {3}}},
		FrameSubmit:         &Submit{Batch: 9, Ops: [][]byte{{1, 1, 7}, {}, {5}}},
		FramePresence:       &Presence{Anchor: []byte{1, 2, 3}, Head: nil},
		FrameAuth:           &Auth{Token: "a.b.c"},
		FrameWelcome:        &Welcome{Doc: "notes", Site: 7, Author: "ada", Write: true, Head: 99, SnapshotSeq: 50, Snapshot: []byte{1}, MaxFrame: 1 << 20, MaxOps: 256, MaxOp: 64 << 10, Expires: 1_700_000_000_000_000_000},
		FrameEvent:          &WireEvent{Seq: 100, Prev: 98, Site: 7, Counter: 12, Author: "ada", Time: 5, Op: []byte{1, 1}},
		FrameAck:            &Ack{Batch: 9, FirstSeq: 100, LastSeq: 102},
		FrameNack:           &Nack{Batch: 9, Code: uint32(CodeBadOp), Message: "no"},
		FramePresenceUpdate: &PresenceUpdate{Site: 7, User: "ada", Name: "Ada", Anchor: []byte{1}, Head: []byte{2}, Gone: false},
		FrameError:          &ErrorFrame{Code: uint32(CodeRateLimited), Message: "slow down"},
	}
}

func newMessage(t FrameType) Message {
	switch t {
	case FrameHello:
		return &Hello{}
	case FrameSubmit:
		return &Submit{}
	case FramePresence:
		return &Presence{}
	case FrameAuth:
		return &Auth{}
	case FrameWelcome:
		return &Welcome{}
	case FrameEvent:
		return &WireEvent{}
	case FrameAck:
		return &Ack{}
	case FrameNack:
		return &Nack{}
	case FramePresenceUpdate:
		return &PresenceUpdate{}
	case FrameError:
		return &ErrorFrame{}
	}
	return nil
}

func TestFramesRoundTrip(t *testing.T) {
	for ft, m := range sampleMessages() {
		b, err := AppendFrame(nil, ft, m)
		if err != nil {
			t.Fatalf("%v: %v", ft, err)
		}
		gt, body, err := SplitFrame(b)
		if err != nil || gt != ft {
			t.Fatalf("%v: split: %v %v", ft, gt, err)
		}
		back := newMessage(gt)
		if err := back.UnmarshalBinary(body); err != nil {
			t.Fatalf("%v: %v", ft, err)
		}
		// Empty byte strings decode as nil.
		if s, ok := m.(*Submit); ok {
			s.Ops[1] = nil
		}
		if !reflect.DeepEqual(back, m) {
			t.Errorf("%v: got %+v, want %+v", ft, back, m)
		}
		// Every truncation fails with a typed error.
		for i := range len(body) {
			if err := newMessage(gt).UnmarshalBinary(body[:i]); CodeOf(err) != CodeBadEvent && CodeOf(err) != CodeUnsupportedVersion {
				t.Fatalf("%v truncated to %d: %v", ft, i, err)
			}
		}
	}
}

func TestSplitFrameRefuses(t *testing.T) {
	for _, f := range [][]byte{nil, {0}, {5}, {15}, {22}, {255}} {
		if _, _, err := SplitFrame(f); CodeOf(err) != CodeBadFrame {
			t.Errorf("SplitFrame(%v) = %v, want bad_frame", f, err)
		}
	}
	// A list that claims more items than bytes left is refused before allocating.
	var s Submit
	if err := s.UnmarshalBinary([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}); CodeOf(err) != CodeBadEvent {
		t.Errorf("huge list count: %v", err)
	}
	// A message version this build does not read.
	if err := s.UnmarshalBinary([]byte{2, 1, 0}); CodeOf(err) != CodeUnsupportedVersion {
		t.Errorf("version 2: %v", err)
	}
}

// FuzzFrames: decoding any frame never panics, errors are typed, and what
// decodes re-encodes to the same message.
func FuzzFrames(f *testing.F) {
	for ft, m := range sampleMessages() {
		b, _ := AppendFrame(nil, ft, m)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{2, 1, 1, 3, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		ft, body, err := SplitFrame(data)
		if err != nil {
			if CodeOf(err) != CodeBadFrame {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		m := newMessage(ft)
		if err := m.UnmarshalBinary(body); err != nil {
			if c := CodeOf(err); c != CodeBadEvent && c != CodeUnsupportedVersion {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := AppendFrame(nil, ft, m)
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		m2 := newMessage(ft)
		if err := m2.UnmarshalBinary(again[1:]); err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %v %+v %+v", err, m, m2)
		}
	})
}
