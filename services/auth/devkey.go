package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// DevIssuer is the iss of tokens minted by IssueDevToken.
const DevIssuer = "palimpsest-dev"

// DevKeyFile is the name of the dev key's file in the data dir.
const DevKeyFile = "auth-dev-ed25519.pem"

// DevKey is an Ed25519 signing key for development: `serve` without an
// identity provider verifies with it and prints a token signed by it.
type DevKey struct {
	// ID is the kid, derived from the public key, so a reloaded key keeps it.
	ID      string
	Private ed25519.PrivateKey
}

// GenerateDevKey returns a fresh Ed25519 dev key.
func GenerateDevKey() (*DevKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, errorf(CodeBadConfig, err, "generating the dev key")
	}
	return newDevKey(priv), nil
}

func newDevKey(priv ed25519.PrivateKey) *DevKey {
	sum := sha256.Sum256(priv.Public().(ed25519.PublicKey))
	return &DevKey{ID: "dev-" + base64.RawURLEncoding.EncodeToString(sum[:9]), Private: priv}
}

// VerifierKey returns the public half, for Config.Keys (or MarshalJWKS).
func (k *DevKey) VerifierKey() Key {
	return Key{ID: k.ID, Public: k.Private.Public()}
}

// Issuer returns an EdDSA Issuer that signs with the key, with kid ID and
// iss DevIssuer.
func (k *DevKey) Issuer() *Issuer {
	return &Issuer{Alg: AlgEdDSA, Key: k.Private, KeyID: k.ID, Iss: DevIssuer}
}

// IssueDevToken mints a token that a Verifier trusting key.VerifierKey()
// accepts for ttl from now: sub subject, name (when not empty), docs, iat,
// exp, iss DevIssuer, kid key.ID. subject must not be empty and ttl must be
// positive.
func IssueDevToken(key *DevKey, subject, name string, docs Docs, ttl time.Duration) (string, error) {
	switch {
	case key == nil:
		return "", errorf(CodeBadConfig, nil, "no dev key")
	case subject == "":
		return "", errorf(CodeBadConfig, nil, "dev token without a subject")
	case ttl <= 0:
		return "", errorf(CodeBadConfig, nil, "dev token ttl %v is not positive", ttl)
	}
	return key.Issuer().Issue(subject, name, docs, ttl)
}

// LoadOrCreateDevKey returns the dev key kept in dir/DevKeyFile, creating
// dir (0700) and the key (a PKCS #8 PEM file, 0600) when there is none, so
// tokens stay valid across restarts. created reports a new key. The file is
// written under a temporary name and linked into place, so a reader never
// sees half a key and two processes starting at once end up with one key.
func LoadOrCreateDevKey(dir string) (key *DevKey, created bool, err error) {
	path := filepath.Join(dir, DevKeyFile)
	if k, err := loadDevKey(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, errorf(CodeBadConfig, err, "dev key dir")
	}
	k, err := GenerateDevKey()
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, false, errorf(CodeBadConfig, err, "encoding the dev key")
	}
	tmp, err := os.CreateTemp(dir, ".devkey-*") // mode 0600
	if err != nil {
		return nil, false, errorf(CodeBadConfig, err, "dev key file")
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, false, errorf(CodeBadConfig, err, "writing the dev key")
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, errorf(CodeBadConfig, err, "writing the dev key")
	}
	if err := tmp.Close(); err != nil {
		return nil, false, errorf(CodeBadConfig, err, "writing the dev key")
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process won the race
			k, err := loadDevKey(path)
			return k, false, err
		}
		return nil, false, errorf(CodeBadConfig, err, "dev key file")
	}
	return k, true, nil
}

func loadDevKey(path string) (*DevKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, errorf(CodeBadConfig, err, "dev key file")
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errorf(CodeBadConfig, nil, "dev key file %q holds no PRIVATE KEY PEM block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, errorf(CodeBadConfig, err, "dev key file %q", path)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, errorf(CodeBadConfig, nil, "dev key file %q holds a %T, not an Ed25519 key", path, parsed)
	}
	return newDevKey(priv), nil
}
