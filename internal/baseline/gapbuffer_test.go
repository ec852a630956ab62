package baseline

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/palimpsest-editor/palimpsest/internal/traces"
)

type edit struct {
	del      bool
	pos, n   int
	text     string
	wantErr  bool
	wantText string
}

func TestBuffer(t *testing.T) {
	cases := []struct {
		name  string
		edits []edit
	}{
		{"insert into empty", []edit{{pos: 0, text: "abc", wantText: "abc"}}},
		{"insert at end", []edit{{text: "ab", wantText: "ab"}, {pos: 2, text: "cd", wantText: "abcd"}}},
		{"insert in middle", []edit{{text: "ad", wantText: "ad"}, {pos: 1, text: "bc", wantText: "abcd"}}},
		{"insert before a moved gap", []edit{
			{text: "abcdef", wantText: "abcdef"},
			{pos: 5, text: "X", wantText: "abcdeXf"},
			{pos: 1, text: "Y", wantText: "aYbcdeXf"},
			{pos: 8, text: "Z", wantText: "aYbcdeXfZ"},
		}},
		{"empty insert", []edit{{text: "ab", wantText: "ab"}, {pos: 1, wantText: "ab"}}},
		{"code points, not bytes", []edit{
			{text: "héllo 😀!", wantText: "héllo 😀!"},
			{pos: 7, text: "€", wantText: "héllo 😀€!"},
			{del: true, pos: 1, n: 1, wantText: "hllo 😀€!"},
			{del: true, pos: 5, n: 2, wantText: "hllo !"},
		}},
		{"delete all", []edit{{text: "abc", wantText: "abc"}, {del: true, pos: 0, n: 3, wantText: ""}}},
		{"delete zero", []edit{{text: "abc", wantText: "abc"}, {del: true, pos: 3, n: 0, wantText: "abc"}}},
		{"delete after delete", []edit{
			{text: "abcdef", wantText: "abcdef"},
			{del: true, pos: 4, n: 1, wantText: "abcdf"},
			{del: true, pos: 1, n: 2, wantText: "adf"},
			{del: true, pos: 2, n: 1, wantText: "ad"},
		}},
		{"insert past end", []edit{{text: "ab", wantText: "ab"}, {pos: 3, text: "x", wantErr: true, wantText: "ab"}}},
		{"insert at negative", []edit{{pos: -1, text: "x", wantErr: true, wantText: ""}}},
		{"delete past end", []edit{{text: "ab", wantText: "ab"}, {del: true, pos: 1, n: 2, wantErr: true, wantText: "ab"}}},
		{"delete negative count", []edit{{text: "ab", wantText: "ab"}, {del: true, pos: 1, n: -1, wantErr: true, wantText: "ab"}}},
		{"delete at end of text", []edit{{text: "ab", wantText: "ab"}, {del: true, pos: 3, n: 0, wantErr: true, wantText: "ab"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b Buffer
			for i, e := range c.edits {
				var err error
				if e.del {
					err = b.Delete(e.pos, e.n)
				} else {
					err = b.Insert(e.pos, e.text)
				}
				if gotErr := err != nil; gotErr != e.wantErr {
					t.Fatalf("edit %d: error = %v, want error: %v", i, err, e.wantErr)
				}
				if err != nil && !errors.Is(err, ErrOutOfRange) {
					t.Fatalf("edit %d: error = %v, want ErrOutOfRange", i, err)
				}
				if got := b.String(); got != e.wantText {
					t.Fatalf("edit %d: text = %q, want %q", i, got, e.wantText)
				}
				if got, want := b.Len(), len([]rune(e.wantText)); got != want {
					t.Fatalf("edit %d: Len = %d, want %d", i, got, want)
				}
			}
		})
	}
}

// TestBufferMatchesSlice replays seeded random edits into a Buffer and into a plain []rune and
// demands the same text after every edit.
func TestBufferMatchesSlice(t *testing.T) {
	alphabet := []rune("ab é€😀\n")
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 0))
		var b Buffer
		var want []rune
		for i := range 2000 {
			if len(want) > 0 && rng.IntN(3) == 0 {
				pos := rng.IntN(len(want))
				n := rng.IntN(min(8, len(want)-pos) + 1)
				if err := b.Delete(pos, n); err != nil {
					t.Fatalf("seed %d edit %d: %v", seed, i, err)
				}
				want = slices.Delete(want, pos, pos+n)
			} else {
				pos := rng.IntN(len(want) + 1)
				size := rng.IntN(8)
				if rng.IntN(50) == 0 {
					size = rng.IntN(300) // now and then more than the gap holds
				}
				text := make([]rune, size)
				for j := range text {
					text[j] = alphabet[rng.IntN(len(alphabet))]
				}
				if err := b.Insert(pos, string(text)); err != nil {
					t.Fatalf("seed %d edit %d: %v", seed, i, err)
				}
				want = slices.Insert(want, pos, text...)
			}
			if b.String() != string(want) || b.Len() != len(want) {
				t.Fatalf("seed %d edit %d: buffer %q (Len %d), slice %q", seed, i, b.String(), b.Len(), string(want))
			}
		}
	}
}

func TestReplayTraces(t *testing.T) {
	for _, name := range traces.All() {
		t.Run(name, func(t *testing.T) {
			tr, err := traces.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			var b Buffer
			if err := tr.Replay(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tr.EndContent {
				t.Fatalf("replay differs from endContent (%d code points, want %d)", b.Len(), len([]rune(tr.EndContent)))
			}
		})
	}
}

func BenchmarkReplay(b *testing.B) {
	for _, name := range traces.All() {
		tr, err := traces.Open(name)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var buf Buffer
				if err := tr.Replay(&buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tr.Patches)), "ns/patch")
		})
	}
}
