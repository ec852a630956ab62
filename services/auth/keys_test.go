package auth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/auth/authtest"
)

// A JWKS with unusable keys next to usable ones: the usable ones verify,
// each skipped key is logged with its reason.
func TestJWKSFileSkipsUnusableKeys(t *testing.T) {
	ks := testKeys(t)
	good, err := auth.MarshalJWKS(authtest.VerifierKey(t, ks.ed), authtest.VerifierKey(t, ks.rsa))
	if err != nil {
		t.Fatal(err)
	}
	var set, bad struct{ Keys []json.RawMessage }
	if err := json.Unmarshal(good, &set); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(unusableJWKS), &bad); err != nil {
		t.Fatal(err)
	}
	set.Keys = append(bad.Keys, set.Keys...)
	mixed, _ := json.Marshal(map[string]any{"keys": set.Keys})

	var logs bytes.Buffer
	v := newVerifier(t, auth.Config{
		JWKSFile: writeFile(t, "mixed.json", mixed),
		Now:      authtest.NewClock(t0).Now,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	})
	for _, iss := range []*auth.Issuer{ks.ed, ks.rsa} {
		if _, err := v.Verify(context.Background(), sign(t, iss, claims(t0))); err != nil {
			t.Errorf("%s: %v", iss, err)
		}
	}
	for _, want := range []string{`kid \"h\"`, `kid \"e\"`, `kid \"r1\"`, `kid \"r2\"`, `kid \"x\"`, `kid \"o\"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line for %s in:\n%s", want, logs.String())
		}
	}
	// An HS256 token that names the oct key's kid is still refused.
	hs := &auth.Issuer{Alg: auth.AlgHS256, Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "h"}
	tok := sign(t, hs, claims(t0))
	_, err = v.Verify(context.Background(), tok)
	checkErr(t, err, auth.CodeAlgNotAllowed, tok)
}

// Private parameters in a published JWKS are ignored: the key still
// verifies as a public key.
func TestJWKSWithPrivateParameters(t *testing.T) {
	dev, err := auth.GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := auth.MarshalJWKS(dev.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	// Add a bogus "d".
	withD := bytes.Replace(pub, []byte(`"kty"`), []byte(`"d":"AAAA","kty"`), 1)
	v := newVerifier(t, auth.Config{JWKSFile: writeFile(t, "d.json", withD)})
	tok, err := auth.IssueDevToken(dev, "dev", "", auth.Docs{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}

func TestMarshalJWKS(t *testing.T) {
	ks := testKeys(t)
	body, err := auth.MarshalJWKS(authtest.VerifierKey(t, ks.ed), authtest.VerifierKey(t, ks.rsa))
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{
		{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "ed-1", "use": "sig"},
		{"kty": "RSA", "alg": "RS256", "kid": "rsa-1", "use": "sig"},
	}
	if len(set.Keys) != len(want) {
		t.Fatalf("%d keys, want %d: %s", len(set.Keys), len(want), body)
	}
	for i, w := range want {
		for k, v := range w {
			if set.Keys[i][k] != v {
				t.Errorf("key %d: %s = %v, want %s", i, k, set.Keys[i][k], v)
			}
		}
		if _, ok := set.Keys[i]["d"]; ok {
			t.Errorf("key %d has private material", i)
		}
	}
	if _, err := auth.MarshalJWKS(weakRSAKey(t)); err == nil {
		t.Error("MarshalJWKS accepted a weak RSA key")
	}
	if empty, err := auth.MarshalJWKS(); err != nil || string(empty) != `{"keys":[]}` {
		t.Errorf("empty set: %s, %v", empty, err)
	}
}

// A PEM file may hold PKIX keys, a PKCS #1 RSA key and a certificate.
func TestPublicKeyFileFormats(t *testing.T) {
	ks := testKeys(t)
	rsaKey := ks.rsa.Key.(*rsa.PrivateKey)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)})

	certKey := ks.rsa2.Key.(*rsa.PrivateKey)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "id"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &certKey.PublicKey, certKey)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})

	file := writeFile(t, "mixed.pem", bytes.Join([][]byte{publicPEM(t, ks.ed), pkcs1, cert}, nil))
	v := newVerifier(t, auth.Config{PublicKeyFile: file, Now: authtest.NewClock(t0).Now})
	for _, iss := range []*auth.Issuer{ks.ed, ks.rsa, ks.rsa2} {
		if _, err := v.Verify(context.Background(), sign(t, iss, claims(t0))); err != nil {
			t.Errorf("%s: %v", iss, err)
		}
	}
	tok := sign(t, ks.ed2, claims(t0))
	_, err = v.Verify(context.Background(), tok)
	checkErr(t, err, auth.CodeBadSignature, tok) // PEM keys have no kid: tried, and fail
}
