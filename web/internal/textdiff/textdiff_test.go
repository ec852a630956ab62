package textdiff

import (
	"math/rand/v2"
	"testing"
)

func apply(a []rune, es []Edit) string {
	s := append([]rune(nil), a...)
	for _, e := range es {
		s = append(s[:e.Pos], append([]rune(e.Ins), s[e.Pos+e.Del:]...)...)
	}
	return string(s)
}

func TestEdits(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"", ""}, {"", "abc"}, {"abc", ""}, {"abc", "abc"},
		{"hello world", "hello brave new world"}, {"abcabba", "cbabac"},
		{"kitten", "sitting"}, {"🙂a🙂", "a🙂b"}, {"line one\nline two\n", "line two\nline three\n"},
	} {
		es := Edits([]rune(c.a), []rune(c.b))
		if got := apply([]rune(c.a), es); got != c.b {
			t.Errorf("Edits(%q, %q) = %+v gives %q", c.a, c.b, es, got)
		}
		if c.a == c.b && len(es) != 0 {
			t.Errorf("Edits(%q, %q) = %+v, want none", c.a, c.b, es)
		}
	}
}

func TestEditsRandom(t *testing.T) {
	seed := uint64(rand.Uint32())
	r := rand.New(rand.NewPCG(seed, 1))
	rnd := func() []rune {
		s := make([]rune, r.IntN(40))
		for i := range s {
			s[i] = rune('a' + r.IntN(4))
		}
		return s
	}
	for i := range 2000 {
		a, b := rnd(), rnd()
		es := Edits(a, b)
		if got := apply(a, es); got != string(b) {
			t.Fatalf("seed %d case %d: Edits(%q, %q) = %+v gives %q", seed, i, string(a), string(b), es, got)
		}
		for j := 1; j < len(es); j++ {
			if es[j].Pos < es[j-1].Pos+len([]rune(es[j-1].Ins)) {
				t.Fatalf("seed %d case %d: edits out of order: %+v", seed, i, es)
			}
		}
	}
}
