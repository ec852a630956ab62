package client

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestTokenExpiry(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		tok  string
		want int64
		ok   bool
	}{
		{enc(`{"alg":"EdDSA"}`) + "." + enc(`{"sub":"ada","exp":1767225600}`) + ".sig", 1767225600, true},
		{enc(`{}`) + "." + enc(`{"sub":"ada"}`) + ".sig", 0, false},
		{"not-a-jwt", 0, false},
		{"a.%%%.c", 0, false},
		{enc(`{}`) + "." + enc(`{"exp":"soon"}`) + ".sig", 0, false},
	} {
		got, ok := tokenExpiry(tc.tok)
		if ok != tc.ok || (ok && got.Unix() != tc.want) {
			t.Errorf("tokenExpiry(%q) = %v %v, want %d %v", tc.tok, got, ok, tc.want, tc.ok)
		}
	}
	exp := time.Now().Add(90 * time.Second)
	if d := exp.Sub(renewAt(exp)); d > 30*time.Second || d < 29*time.Second {
		t.Errorf("renewAt 90 s ahead: %v before expiry, want 30 s", d)
	}
	exp = time.Now().Add(3 * time.Second)
	if d := exp.Sub(renewAt(exp)); d < 900*time.Millisecond || d > time.Second {
		t.Errorf("renewAt 3 s ahead: %v before expiry, want about 1 s", d)
	}
}

func TestMemoryStore(t *testing.T) {
	var s MemoryStore
	if site, p, err := s.Load("d"); site != 0 || p != nil || err != nil {
		t.Fatalf("empty store: %d %v %v", site, p, err)
	}
	ops := [][]byte{{1}, {2}}
	if err := s.Save("d", 7, ops); err != nil {
		t.Fatal(err)
	}
	ops[0] = []byte{9} // The store keeps its own copy of the list.
	site, p, _ := s.Load("d")
	if site != 7 || len(p) != 2 || p[0][0] != 1 {
		t.Errorf("loaded %d %v", site, p)
	}
}

func TestOpenNeedsURLDocToken(t *testing.T) {
	if _, err := Open(Config{URL: "ws://x", Doc: "d"}); err == nil {
		t.Error("Open without a token source succeeded")
	}
}
