package auth_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/auth/authtest"
)

// Key rotation at a JWKS URL: a new kid is fetched on first sight, a removed
// kid stops verifying, unknown kids cannot make the verifier fetch more than
// once per JWKSMinRefreshGap, and an outage keeps the keys in force.
func TestJWKSURLRotation(t *testing.T) {
	ks := testKeys(t)
	ctx := context.Background()
	clock := authtest.NewClock(t0)
	srv := authtest.NewJWKSServer(t, authtest.VerifierKey(t, ks.ed))
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL, Now: clock.Now, JWKSMinRefreshGap: time.Minute})
	verify := func(iss *auth.Issuer) error {
		_, err := v.Verify(ctx, sign(t, iss, claims(clock.Now())))
		return err
	}
	if n := srv.Hits(); n != 1 {
		t.Fatalf("NewVerifier fetched %d times, want 1", n)
	}
	if err := verify(ks.ed); err != nil {
		t.Fatalf("ed-1 before rotation: %v", err)
	}

	// Rotate to ed-2 and rsa-1; ed-1 is gone. The first token with a new
	// kid, a minute after the last fetch, triggers one fetch.
	srv.SetKeys(t, authtest.VerifierKey(t, ks.ed2), authtest.VerifierKey(t, ks.rsa))
	clock.Advance(time.Minute)
	if err := verify(ks.ed2); err != nil {
		t.Fatalf("ed-2 after rotation: %v", err)
	}
	if n := srv.Hits(); n != 2 {
		t.Fatalf("fetches after an unknown kid: %d, want 2", n)
	}
	if err := verify(ks.rsa); err != nil {
		t.Fatalf("rsa-1 after rotation: %v", err)
	}
	// The removed key no longer verifies, and asking again within the gap
	// does not fetch.
	for range 5 {
		checkErr(t, verify(ks.ed), auth.CodeUnknownKey, "")
	}
	if n := srv.Hits(); n != 2 {
		t.Fatalf("fetches for unknown kids within the gap: %d, want 2", n)
	}

	// A new key inside the gap is unknown until the gap has passed.
	srv.SetKeys(t, authtest.VerifierKey(t, ks.ed2), authtest.VerifierKey(t, ks.rsa2))
	checkErr(t, verify(ks.rsa2), auth.CodeUnknownKey, "")
	clock.Advance(59 * time.Second)
	checkErr(t, verify(ks.rsa2), auth.CodeUnknownKey, "")
	clock.Advance(time.Second)
	if err := verify(ks.rsa2); err != nil {
		t.Fatalf("rsa-2 after the gap: %v", err)
	}
	if n := srv.Hits(); n != 3 {
		t.Fatalf("fetches: %d, want 3", n)
	}

	// An outage or a broken document keeps the keys in force.
	for _, bad := range []struct {
		status int
		body   string
	}{
		{http.StatusServiceUnavailable, "down"},
		{http.StatusOK, "{not json"},
		{http.StatusOK, `{"keys":[]}`},
		{http.StatusOK, unusableJWKS},
	} {
		srv.SetBody(bad.status, []byte(bad.body))
		err := v.Refresh(ctx)
		checkErr(t, err, auth.CodeBadConfig, "")
		if err := verify(ks.ed2); err != nil {
			t.Fatalf("ed-2 after a failed refresh (%d %q): %v", bad.status, bad.body, err)
		}
	}

	// Refresh replaces the whole set at once.
	srv.SetKeys(t, authtest.VerifierKey(t, ks.ed))
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := verify(ks.ed); err != nil {
		t.Fatalf("ed-1 after Refresh: %v", err)
	}
	for _, gone := range []*auth.Issuer{ks.ed2, ks.rsa2} {
		checkErr(t, verify(gone), auth.CodeUnknownKey, "")
	}
}

// A JWKS larger than the limit is refused and the keys stay.
func TestJWKSURLTooLarge(t *testing.T) {
	ks := testKeys(t)
	srv := authtest.NewJWKSServer(t, authtest.VerifierKey(t, ks.ed))
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL, Now: authtest.NewClock(t0).Now})
	big := make([]byte, 2<<20)
	for i := range big {
		big[i] = ' '
	}
	srv.SetBody(http.StatusOK, big)
	checkErr(t, v.Refresh(context.Background()), auth.CodeBadConfig, "")
	if _, err := v.Verify(context.Background(), sign(t, ks.ed, claims(t0))); err != nil {
		t.Fatal(err)
	}
}

// Verify runs concurrently with refreshes that swap the key set (run with
// -race).
func TestVerifyConcurrentWithRefresh(t *testing.T) {
	ks := testKeys(t)
	srv := authtest.NewJWKSServer(t, authtest.VerifierKey(t, ks.ed), authtest.VerifierKey(t, ks.rsa))
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL, Now: authtest.NewClock(t0).Now})
	tokens := []string{sign(t, ks.ed, claims(t0)), sign(t, ks.rsa, claims(t0))}
	var wg sync.WaitGroup
	errs := make(chan error, 8*50)
	for g := range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := v.Verify(context.Background(), tokens[g%2]); err != nil {
					errs <- err
				}
			}
		})
	}
	for range 20 {
		if err := v.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The refresh goroutine ends when the context given to NewVerifier ends.
func TestVerifierStopsWithContext(t *testing.T) {
	ks := testKeys(t)
	srv := authtest.NewJWKSServer(t, authtest.VerifierKey(t, ks.ed))
	ctx, cancel := context.WithCancel(context.Background())
	v, err := auth.NewVerifier(ctx, auth.Config{JWKSURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	v.Close() // returns only once the goroutine has ended
	v.Close() // idempotent
	if _, err := v.Verify(context.Background(), sign(t, ks.ed, claims(time.Now()))); err != nil {
		t.Fatalf("Verify after Close: %v", err)
	}
}
