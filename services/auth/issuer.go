package auth

import (
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer mints signed tokens. It exists for development (IssueDevToken) and
// for tests, which need tokens with arbitrary, also invalid, claims;
// production tokens come from the identity provider.
type Issuer struct {
	// Alg is AlgEdDSA, AlgRS256 or AlgHS256.
	Alg string
	// Key signs: an ed25519.PrivateKey for EdDSA, an *rsa.PrivateKey for
	// RS256, a []byte secret for HS256 (any bytes, so tests can try a public
	// key's PEM as an HMAC secret).
	Key any
	// KeyID goes into the header as kid; empty leaves kid out.
	KeyID string
	// Iss, when set, is the iss claim that Claims adds.
	Iss string
	// Now is the clock of Claims; nil means time.Now.
	Now func() time.Time
}

// NewIssuer returns an Issuer for key, with the alg that fits its type
// (ed25519.PrivateKey: EdDSA, *rsa.PrivateKey: RS256, []byte: HS256).
func NewIssuer(key any, kid string) (*Issuer, error) {
	var alg string
	switch key.(type) {
	case ed25519.PrivateKey:
		alg = AlgEdDSA
	case *rsa.PrivateKey:
		alg = AlgRS256
	case []byte:
		alg = AlgHS256
	default:
		return nil, errorf(CodeBadConfig, nil, "issuer key of type %T (want ed25519.PrivateKey, *rsa.PrivateKey or []byte)", key)
	}
	return &Issuer{Alg: alg, Key: key, KeyID: kid}, nil
}

// VerifierKey returns the public key that verifies this issuer's tokens,
// with KeyID as its ID; it fails for HS256, which has no public key.
func (i *Issuer) VerifierKey() (Key, error) {
	switch k := i.Key.(type) {
	case ed25519.PrivateKey:
		return Key{ID: i.KeyID, Public: k.Public()}, nil
	case *rsa.PrivateKey:
		return Key{ID: i.KeyID, Public: &k.PublicKey}, nil
	default:
		return Key{}, errorf(CodeBadConfig, nil, "an issuer with a %T key has no public key", i.Key)
	}
}

// Claims returns the claims Issue signs: sub, name (when not empty), docs,
// iat = now, exp = now + ttl, and iss when Iss is set. Tests change the map
// and pass it to Sign.
func (i *Issuer) Claims(subject, name string, docs Docs, ttl time.Duration) map[string]any {
	now := time.Now
	if i.Now != nil {
		now = i.Now
	}
	t := now()
	c := map[string]any{
		"sub":     subject,
		DocsClaim: docs,
		"iat":     jwt.NewNumericDate(t),
		"exp":     jwt.NewNumericDate(t.Add(ttl)),
	}
	if name != "" {
		c["name"] = name
	}
	if i.Iss != "" {
		c["iss"] = i.Iss
	}
	return c
}

// Issue signs Claims(subject, name, docs, ttl).
func (i *Issuer) Issue(subject, name string, docs Docs, ttl time.Duration) (string, error) {
	return i.Sign(i.Claims(subject, name, docs, ttl))
}

// Sign signs claims exactly as given (nothing is added or checked) with the
// issuer's alg, key and kid, and returns the compact JWS.
func (i *Issuer) Sign(claims map[string]any) (string, error) {
	var m jwt.SigningMethod
	switch i.Alg {
	case AlgEdDSA:
		m = jwt.SigningMethodEdDSA
	case AlgRS256:
		m = jwt.SigningMethodRS256
	case AlgHS256:
		m = jwt.SigningMethodHS256
	default:
		return "", errorf(CodeBadConfig, nil, "issuer alg %q is not EdDSA, RS256 or HS256", i.Alg)
	}
	t := jwt.NewWithClaims(m, jwt.MapClaims(claims))
	if i.KeyID != "" {
		t.Header["kid"] = i.KeyID
	}
	s, err := t.SignedString(i.Key)
	if err != nil {
		return "", errorf(CodeBadConfig, err, "signing with %s", i.Alg)
	}
	return s, nil
}

// String names the issuer without its key.
func (i *Issuer) String() string { return fmt.Sprintf("Issuer(%s, kid %q)", i.Alg, i.KeyID) }
