// Package authtest helps tests of code that uses package auth: key pairs
// and issuers, a JWKS server whose keys can be rotated, a settable clock,
// and the bad tokens a verifier must refuse (alg "none", a swapped header,
// a tampered payload).
//
//	iss := authtest.EdDSAIssuer(t, "k1")
//	v, _ := auth.NewVerifier(ctx, auth.Config{Keys: []auth.Key{authtest.VerifierKey(t, iss)}})
//	tok, _ := iss.Issue("ada", "Ada", auth.Docs{Read: []string{"*"}}, time.Minute)
//	_, err := v.Verify(ctx, authtest.NoneToken(map[string]any{"sub": "ada"})) // auth.ErrAlgNotAllowed
package authtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/services/auth"
)

// EdDSAIssuer returns an issuer with a fresh Ed25519 key and kid.
func EdDSAIssuer(t testing.TB, kid string) *auth.Issuer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &auth.Issuer{Alg: auth.AlgEdDSA, Key: priv, KeyID: kid}
}

// RS256Issuer returns an issuer with a fresh 2048-bit RSA key and kid.
func RS256Issuer(t testing.TB, kid string) *auth.Issuer {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &auth.Issuer{Alg: auth.AlgRS256, Key: priv, KeyID: kid}
}

// VerifierKey returns iss's public key, failing the test for HS256.
func VerifierKey(t testing.TB, iss *auth.Issuer) auth.Key {
	t.Helper()
	k, err := iss.VerifierKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Sign signs claims with iss, failing the test on error.
func Sign(t testing.TB, iss *auth.Issuer, claims map[string]any) string {
	t.Helper()
	s, err := iss.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func segment(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with maps of JSON values
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// NoneToken returns an unsigned token: header {"alg":"none","typ":"JWT"},
// the claims, and an empty signature.
func NoneToken(claims map[string]any) string {
	return segment(map[string]any{"alg": "none", "typ": "JWT"}) + "." + segment(claims) + "."
}

// WithHeader returns token with its header replaced by header and the
// payload and signature kept (an alg swap, an added kid, a crit).
func WithHeader(token string, header map[string]any) string {
	parts := strings.SplitN(token, ".", 3)
	parts[0] = segment(header)
	return strings.Join(parts, ".")
}

// Tamper returns token with its payload replaced by claims and the header
// and signature kept: a forged token whose signature no longer fits.
func Tamper(token string, claims map[string]any) string {
	parts := strings.SplitN(token, ".", 3)
	if len(parts) == 3 {
		parts[1] = segment(claims)
	}
	return strings.Join(parts, ".")
}

// Clock is a settable clock for Config.Now and Issuer.Now. Safe for
// concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that reads t until moved.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// JWKSServer serves a JWK Set over HTTP on loopback; SetKeys rotates it.
type JWKSServer struct {
	*httptest.Server
	mu     sync.Mutex
	body   []byte
	status int
	hits   int
}

// NewJWKSServer starts a server that serves keys; it is closed when the
// test ends.
func NewJWKSServer(t testing.TB, keys ...auth.Key) *JWKSServer {
	t.Helper()
	s := &JWKSServer{status: http.StatusOK}
	s.SetKeys(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		s.hits++
		status, body := s.status, s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// SetKeys makes the server serve keys from now on.
func (s *JWKSServer) SetKeys(t testing.TB, keys ...auth.Key) {
	t.Helper()
	body, err := auth.MarshalJWKS(keys...)
	if err != nil {
		t.Fatal(err)
	}
	s.SetBody(http.StatusOK, body)
}

// SetBody makes the server answer with status and body from now on (an
// outage, a broken document).
func (s *JWKSServer) SetBody(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// Hits returns how many requests the server has answered.
func (s *JWKSServer) Hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}
