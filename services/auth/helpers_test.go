package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/auth/authtest"
)

// quiet discards the verifier's warnings about skipped keys and HS256.
var quiet = slog.New(slog.DiscardHandler)

// t0 is the test clock's start; tokens are built around it.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// devSecret is a 32-byte HS256 development secret.
var devSecret = []byte("0123456789abcdef0123456789abcdef")

type keyset struct {
	ed       *auth.Issuer // Ed25519, kid ed-1
	ed2      *auth.Issuer // Ed25519, kid ed-2 (rotation)
	edForged *auth.Issuer // another Ed25519 key that claims kid ed-1
	rsa      *auth.Issuer // RSA 2048, kid rsa-1
	rsa2     *auth.Issuer // RSA 2048, kid rsa-2 (rotation)
}

var (
	keysOnce sync.Once
	keysVal  keyset
)

// testKeys returns the package's test keys, generated once per run.
func testKeys(t testing.TB) keyset {
	t.Helper()
	keysOnce.Do(func() {
		keysVal = keyset{
			ed:       authtest.EdDSAIssuer(t, "ed-1"),
			ed2:      authtest.EdDSAIssuer(t, "ed-2"),
			edForged: authtest.EdDSAIssuer(t, "ed-1"),
			rsa:      authtest.RS256Issuer(t, "rsa-1"),
			rsa2:     authtest.RS256Issuer(t, "rsa-2"),
		}
	})
	return keysVal
}

// del marks a claim to delete in claims' edits.
type del struct{}

// claims returns valid claims around now, changed by edits (key, value
// pairs; a del{} value deletes the key).
func claims(now time.Time, edits ...any) map[string]any {
	c := map[string]any{
		"sub":  "ada",
		"name": "Ada Lovelace",
		"iat":  now.Unix(),
		"exp":  now.Add(5 * time.Minute).Unix(),
		"docs": map[string]any{"read": []string{"*"}, "write": []string{"team-a-*", "notes-42"}},
	}
	for i := 0; i+1 < len(edits); i += 2 {
		k := edits[i].(string)
		if _, ok := edits[i+1].(del); ok {
			delete(c, k)
			continue
		}
		c[k] = edits[i+1]
	}
	return c
}

func sign(t *testing.T, iss *auth.Issuer, c map[string]any) string {
	t.Helper()
	return authtest.Sign(t, iss, maps.Clone(c))
}

// rawSign signs header and payload given as raw JSON text, for tokens whose
// JSON no well-behaved encoder produces.
func rawSign(t *testing.T, iss *auth.Issuer, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	var m jwt.SigningMethod
	switch iss.Alg {
	case auth.AlgEdDSA:
		m = jwt.SigningMethodEdDSA
	case auth.AlgRS256:
		m = jwt.SigningMethodRS256
	default:
		m = jwt.SigningMethodHS256
	}
	sig, err := m.Sign(in, iss.Key)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + enc.EncodeToString(sig)
}

// publicPEM returns the PKIX PEM of iss's public key.
func publicPEM(t *testing.T, iss *auth.Issuer) []byte {
	t.Helper()
	var pub any
	switch k := iss.Key.(type) {
	case ed25519.PrivateKey:
		pub = k.Public()
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newVerifier(t *testing.T, cfg auth.Config) *auth.Verifier {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	v, err := auth.NewVerifier(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// checkErr fails unless err is an *auth.Error with code want that errors.Is
// matches, whose message does not leak token.
func checkErr(t *testing.T, err error, want auth.Code, token string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", want)
	}
	if got := auth.CodeOf(err); got != want {
		t.Fatalf("code %q, want %q (error: %v)", got, want, err)
	}
	var e *auth.Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(*auth.Error) fails for %v", err)
	}
	if !errors.Is(err, &auth.Error{Code: want}) {
		t.Fatalf("errors.Is(err, code %s) is false", want)
	}
	noLeak(t, err, token)
}

// noLeak fails if err's message holds token or one of its parts.
func noLeak(t *testing.T, err error, token string) {
	t.Helper()
	msg := err.Error()
	if token != "" && strings.Contains(msg, token) {
		t.Fatalf("error message contains the token: %s", msg)
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 12 && strings.Contains(msg, part) {
			t.Fatalf("error message contains a part of the token (%q): %s", part, msg)
		}
	}
}

// weakRSAKey returns a 1024-bit RSA public key, under auth.MinRSABits.
func weakRSAKey(t *testing.T) auth.Key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return auth.Key{ID: "weak", Public: &k.PublicKey}
}

// devKeyPEM returns a PKCS #8 private key PEM.
func devKeyPEM(t *testing.T) []byte {
	t.Helper()
	k, err := auth.GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
