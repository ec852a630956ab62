package crdt_test

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/palimpsest-editor/palimpsest/crdt"
)

// randomSession returns a few replicas after a seeded random session, and every op it made.
func randomSession(t testing.TB, seed uint64, steps int) ([]*crdt.Doc, []crdt.Op) {
	rng := rand.New(rand.NewPCG(seed, 3))
	docs := []*crdt.Doc{crdt.New(1, rand.NewPCG(seed, 1)), crdt.New(2, rand.NewPCG(seed, 2))}
	var ops []crdt.Op
	for range steps {
		d := docs[rng.IntN(len(docs))]
		var op crdt.Op
		var err error
		if d.Len() > 0 && rng.IntN(3) == 0 {
			pos := rng.IntN(d.Len())
			op, err = d.Delete(pos, 1+rng.IntN(min(4, d.Len()-pos)))
		} else {
			op, err = d.Insert(rng.IntN(d.Len()+1), []string{"a", "bc", "ü", "😀x", "\n"}[rng.IntN(5)])
		}
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
		for _, other := range docs {
			if other != d && rng.IntN(4) > 0 {
				if _, err := other.Apply(op); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return docs, ops
}

func TestOpRoundTrip(t *testing.T) {
	seed := uint64(rand.Int64())
	_, ops := randomSession(t, seed, 2000)
	for _, op := range ops {
		b := crdt.AppendOp(nil, &op)
		got, err := crdt.DecodeOp(b)
		if err != nil {
			t.Fatalf("seed %d: decode %d:%d: %v", seed, op.Site, op.Counter, err)
		}
		if !reflect.DeepEqual(got, op) {
			t.Fatalf("seed %d: decode(encode(op)) = %+v, want %+v", seed, got, op)
		}
	}
}

// TestSnapshotRoundTrip covers states that hold ops and deletes for later: a replica that missed
// some ops of each site, then saw later ones.
func TestSnapshotRoundTrip(t *testing.T) {
	seed := uint64(rand.Int64())
	docs, ops := randomSession(t, seed, 1500)
	late := crdt.New(5, rand.NewPCG(seed, 5))
	perm := rand.New(rand.NewPCG(seed, 6)).Perm(len(ops))
	for _, i := range perm[:len(perm)/2] {
		if _, err := late.Apply(ops[i]); err != nil {
			t.Fatal(err)
		}
	}
	if held, _ := late.Pending(); held == 0 {
		t.Fatalf("seed %d: the test wants a state with held ops", seed)
	}
	for i, d := range append(docs, late, crdt.New(6, rand.NewPCG(1, 1))) {
		snap := d.AppendSnapshot(nil)
		got, err := crdt.LoadSnapshot(snap, d.Site(), rand.NewPCG(1, 2))
		if err != nil {
			t.Fatalf("seed %d doc %d: %v", seed, i, err)
		}
		if got.Text() != d.Text() || !slices.Equal(idsOf(got), idsOf(d)) ||
			!reflect.DeepEqual(got.Clock(), d.Clock()) {
			t.Fatalf("seed %d doc %d: loaded state differs", seed, i)
		}
		gh, gd := got.Pending()
		wh, wd := d.Pending()
		if gh != wh || gd != wd {
			t.Fatalf("seed %d doc %d: pending %d/%d, want %d/%d", seed, i, gh, gd, wh, wd)
		}
		if again := got.AppendSnapshot(nil); !slices.Equal(again, snap) {
			t.Fatalf("seed %d doc %d: encode(decode(s)) != s", seed, i)
		}
	}
	// The loaded late replica finishes catching up exactly like the original.
	loaded, err := crdt.LoadSnapshot(late.AppendSnapshot(nil), 5, rand.NewPCG(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range perm[len(perm)/2:] {
		for _, d := range []*crdt.Doc{late, loaded} {
			if _, err := d.Apply(ops[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if loaded.Text() != late.Text() {
		t.Fatalf("seed %d: loaded replica diverged after catching up", seed)
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	d := newDoc(1)
	op := mustInsert(t, d, 0, "hi")
	good := crdt.AppendOp(nil, &op)
	snap := d.AppendSnapshot(nil)
	for _, tc := range []struct {
		name string
		data []byte
		code crdt.Code
	}{
		{"empty", nil, crdt.CodeTruncated},
		{"unknown version", append([]byte{9}, good[1:]...), crdt.CodeBadVersion},
		{"truncated", good[:len(good)-1], crdt.CodeTruncated},
		{"trailing byte", append(slices.Clone(good), 0), crdt.CodeTruncated},
		{"unknown kind", append([]byte{1, 7}, good[2:]...), crdt.CodeBadOp},
		{"huge count", []byte{1, 1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}, crdt.CodeTooLarge},
	} {
		if _, err := crdt.DecodeOp(tc.data); crdt.CodeOf(err) != tc.code {
			t.Errorf("op %s: error %v, want %s", tc.name, err, tc.code)
		}
	}
	for _, tc := range []struct {
		name string
		data []byte
		code crdt.Code
	}{
		{"empty", nil, crdt.CodeTruncated},
		{"unknown version", append([]byte{7}, snap[1:]...), crdt.CodeBadVersion},
		{"not deflate", []byte{1, 0xff, 0xff}, crdt.CodeTruncated},
		{"truncated", snap[:len(snap)-2], crdt.CodeTruncated},
	} {
		if _, err := crdt.LoadSnapshot(tc.data, 1, rand.NewPCG(1, 1)); crdt.CodeOf(err) != tc.code {
			t.Errorf("snapshot %s: error %v, want %s", tc.name, err, tc.code)
		}
	}
}

func FuzzDecodeOp(f *testing.F) {
	_, ops := randomSession(f, 1, 50)
	for i := range ops {
		f.Add(crdt.AppendOp(nil, &ops[i]))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		op, err := crdt.DecodeOp(data)
		if err != nil {
			if crdt.CodeOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if err := op.Validate(); err != nil {
			t.Fatalf("decoded an invalid op: %v", err)
		}
		again, err := crdt.DecodeOp(crdt.AppendOp(nil, &op))
		if err != nil || !reflect.DeepEqual(again, op) {
			t.Fatalf("re-encoding changed the op: %v", err)
		}
		// Applying any decodable op never panics, and a refused op changes nothing.
		d := newDoc(99)
		if _, err := d.Apply(op); err != nil && d.Len() != 0 {
			t.Fatal("refused op changed the document")
		}
	})
}

func FuzzLoadSnapshot(f *testing.F) {
	docs, _ := randomSession(f, 2, 80)
	for _, d := range docs {
		f.Add(d.AppendSnapshot(nil))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := crdt.LoadSnapshot(data, 1, rand.NewPCG(1, 1))
		if err != nil {
			if crdt.CodeOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := crdt.LoadSnapshot(d.AppendSnapshot(nil), 1, rand.NewPCG(1, 1))
		if err != nil || again.Text() != d.Text() {
			t.Fatalf("a loaded snapshot does not round-trip: %v", err)
		}
		// A loaded document stays editable.
		if _, err := d.Insert(d.Len(), "x"); err != nil && crdt.CodeOf(err) != crdt.CodeExhausted {
			t.Fatalf("insert into loaded document: %v", err)
		}
	})
}
