package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// The periodic refresh picks up rotated keys on its tick, without any
// unknown-kid fetch (the clock never moves, so the gap never passes).
func TestPeriodicRefresh(t *testing.T) {
	newIssuer := func(kid string) *Issuer {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return &Issuer{Alg: AlgEdDSA, Key: priv, KeyID: kid}
	}
	a, b := newIssuer("a"), newIssuer("b")
	var (
		mu   sync.Mutex
		jwks []byte
	)
	serve := func(iss *Issuer) {
		k, _ := iss.VerifierKey()
		body, err := MarshalJWKS(k)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		jwks = body
	}
	serve(a)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Write(jwks)
	}))
	defer srv.Close()

	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tick := make(chan time.Time)
	refreshed := make(chan error)
	var gotInterval time.Duration
	v, err := newVerifier(context.Background(), Config{
		JWKSURL: srv.URL, JWKSRefresh: 7 * time.Minute, JWKSMinRefreshGap: time.Hour,
		Now: func() time.Time { return now },
	}, hooks{
		ticker: func(d time.Duration) (<-chan time.Time, func()) {
			gotInterval = d
			return tick, func() {}
		},
		afterRefresh: func(err error) { refreshed <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if gotInterval != 7*time.Minute {
		t.Errorf("ticker interval %v, want 7m", gotInterval)
	}
	verify := func(iss *Issuer) error {
		tok, err := iss.Issue("ada", "", Docs{}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(context.Background(), tok)
		return err
	}
	iss := func(i *Issuer) *Issuer { i.Now = func() time.Time { return now }; return i }
	a, b = iss(a), iss(b)

	if err := verify(a); err != nil {
		t.Fatal(err)
	}
	serve(b)
	if err := verify(b); CodeOf(err) != CodeUnknownKey {
		t.Fatalf("b before the tick: %v, want %s", err, CodeUnknownKey)
	}
	tick <- now
	if err := <-refreshed; err != nil {
		t.Fatalf("periodic refresh: %v", err)
	}
	if err := verify(b); err != nil {
		t.Fatalf("b after the tick: %v", err)
	}
	if err := verify(a); CodeOf(err) != CodeUnknownKey {
		t.Fatalf("a after the tick: %v, want %s", err, CodeUnknownKey)
	}
}
