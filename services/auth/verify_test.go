package auth_test

import (
	"context"
	"crypto/ed25519"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/auth/authtest"
)

// source builds the key part of a Config.
type source func(t *testing.T, ks keyset) auth.Config

func staticKeys(t *testing.T, ks keyset) auth.Config {
	return auth.Config{Keys: []auth.Key{authtest.VerifierKey(t, ks.ed), authtest.VerifierKey(t, ks.rsa)}}
}

func jwksFile(t *testing.T, ks keyset) auth.Config {
	body, err := auth.MarshalJWKS(authtest.VerifierKey(t, ks.ed), authtest.VerifierKey(t, ks.rsa))
	if err != nil {
		t.Fatal(err)
	}
	return auth.Config{JWKSFile: writeFile(t, "jwks.json", body)}
}

func jwksURL(t *testing.T, ks keyset) auth.Config {
	srv := authtest.NewJWKSServer(t, authtest.VerifierKey(t, ks.ed), authtest.VerifierKey(t, ks.rsa))
	return auth.Config{JWKSURL: srv.URL}
}

func pemFile(t *testing.T, ks keyset) auth.Config {
	data := append(publicPEM(t, ks.ed), publicPEM(t, ks.rsa)...)
	return auth.Config{PublicKeyFile: writeFile(t, "keys.pem", data)}
}

func withDev(s source) source {
	return func(t *testing.T, ks keyset) auth.Config {
		c := s(t, ks)
		c.DevHS256Secret = devSecret
		return c
	}
}

func TestVerify(t *testing.T) {
	ks := testKeys(t)
	hs := &auth.Issuer{Alg: auth.AlgHS256, Key: devSecret}
	hsWrong := &auth.Issuer{Alg: auth.AlgHS256, Key: []byte("another secret, also 32 bytes ok")}
	rsaPEM := publicPEM(t, ks.rsa)
	// Alg confusion: the RSA public key (PEM, as published) or the raw
	// Ed25519 public key used as an HMAC secret.
	hsRSAPub := &auth.Issuer{Alg: auth.AlgHS256, Key: rsaPEM, KeyID: "rsa-1"}
	hsEdPub := &auth.Issuer{Alg: auth.AlgHS256, Key: []byte(authtest.VerifierKey(t, ks.ed).Public.(ed25519.PublicKey)), KeyID: "ed-1"}
	noKid := *ks.ed
	noKid.KeyID = ""
	unknownKid := *ks.ed
	unknownKid.KeyID = "ed-9"
	now := t0
	good := claims(now)

	type tc struct {
		name   string
		src    source
		cfg    func(*auth.Config)
		token  func(t *testing.T) string
		want   auth.Code // "" accepts
		accept func(t *testing.T, p *auth.Principal)
	}
	signed := func(iss *auth.Issuer, edits ...any) func(t *testing.T) string {
		return func(t *testing.T) string { return sign(t, iss, claims(now, edits...)) }
	}
	raw := func(iss *auth.Issuer, header, payload string) func(t *testing.T) string {
		return func(t *testing.T) string { return rawSign(t, iss, header, payload) }
	}
	lit := func(s string) func(t *testing.T) string { return func(*testing.T) string { return s } }
	validPayload := `{"sub":"ada","exp":` + itoa(now.Add(time.Minute).Unix()) + `}`

	cases := []tc{
		// Accepted, from every key source.
		{name: "EdDSA static", src: staticKeys, token: signed(ks.ed), accept: func(t *testing.T, p *auth.Principal) {
			if p.Subject != "ada" || p.Name != "Ada Lovelace" || !p.ExpiresAt.Equal(now.Add(5*time.Minute)) || !p.IssuedAt.Equal(now) {
				t.Errorf("principal %+v", p)
			}
			if !slices.Equal(p.Docs.Read, []string{"*"}) || !slices.Equal(p.Docs.Write, []string{"team-a-*", "notes-42"}) {
				t.Errorf("docs %+v", p.Docs)
			}
		}},
		{name: "RS256 static", src: staticKeys, token: signed(ks.rsa)},
		{name: "EdDSA JWKS file", src: jwksFile, token: signed(ks.ed)},
		{name: "RS256 JWKS file", src: jwksFile, token: signed(ks.rsa)},
		{name: "EdDSA JWKS URL", src: jwksURL, token: signed(ks.ed)},
		{name: "RS256 JWKS URL", src: jwksURL, token: signed(ks.rsa)},
		{name: "EdDSA PEM file, token with kid", src: pemFile, token: signed(ks.ed)},
		{name: "RS256 PEM file, token with kid", src: pemFile, token: signed(ks.rsa)},
		{name: "EdDSA without kid", src: jwksFile, token: signed(&noKid)},
		{name: "HS256 with the dev option", src: withDev(staticKeys), token: signed(hs)},
		{name: "HS256 only source", src: func(*testing.T, keyset) auth.Config { return auth.Config{DevHS256Secret: devSecret} }, token: signed(hs)},
		{name: "expired within leeway", src: staticKeys, token: signed(ks.ed, "exp", now.Add(-20*time.Second).Unix())},
		{name: "nbf within leeway", src: staticKeys, token: signed(ks.ed, "nbf", now.Add(20*time.Second).Unix())},
		{name: "iss and aud match", src: staticKeys, cfg: func(c *auth.Config) { c.Issuer, c.Audience = "https://id.example", "palimpsest" },
			token: signed(ks.ed, "iss", "https://id.example", "aud", []string{"other", "palimpsest"})},
		{name: "aud as a string", src: staticKeys, cfg: func(c *auth.Config) { c.Audience = "palimpsest" }, token: signed(ks.ed, "aud", "palimpsest")},
		{name: "no docs claim", src: staticKeys, token: signed(ks.ed, "docs", del{}), accept: func(t *testing.T, p *auth.Principal) {
			if p.CanRead("notes-42") || p.CanWrite("notes-42") {
				t.Error("a token without docs grants access")
			}
		}},

		// Algorithms.
		{name: "HS256 without the dev option", src: staticKeys, token: signed(hs), want: auth.CodeAlgNotAllowed},
		{name: "HS256 with a wrong secret", src: withDev(staticKeys), token: signed(hsWrong), want: auth.CodeBadSignature},
		{name: "alg none", src: staticKeys, token: lit(authtest.NoneToken(good)), want: auth.CodeAlgNotAllowed},
		{name: "alg none with the dev option", src: withDev(staticKeys), token: lit(authtest.NoneToken(good)), want: auth.CodeAlgNotAllowed},
		{name: "alg None", src: staticKeys, token: func(t *testing.T) string {
			return authtest.WithHeader(authtest.NoneToken(good), map[string]any{"alg": "None"})
		}, want: auth.CodeAlgNotAllowed},
		{name: "alg none with a signature", src: staticKeys, token: func(t *testing.T) string {
			return authtest.WithHeader(sign(t, ks.ed, good), map[string]any{"alg": "none", "kid": "ed-1"})
		}, want: auth.CodeAlgNotAllowed},
		{name: "alg ES256", src: staticKeys, token: func(t *testing.T) string {
			return authtest.WithHeader(sign(t, ks.ed, good), map[string]any{"alg": "ES256"})
		}, want: auth.CodeAlgNotAllowed},
		{name: "alg PS256", src: staticKeys, token: func(t *testing.T) string {
			return authtest.WithHeader(sign(t, ks.rsa, good), map[string]any{"alg": "PS256", "kid": "rsa-1"})
		}, want: auth.CodeAlgNotAllowed},
		{name: "alg HS512 with the dev option", src: withDev(staticKeys), token: func(t *testing.T) string {
			return authtest.WithHeader(sign(t, hs, good), map[string]any{"alg": "HS512"})
		}, want: auth.CodeAlgNotAllowed},
		{name: "alg confusion: RSA public PEM as HS256 secret", src: jwksFile, token: signed(hsRSAPub), want: auth.CodeAlgNotAllowed},
		{name: "alg confusion: RSA public PEM as HS256 secret, dev option on", src: withDev(jwksFile), token: signed(hsRSAPub), want: auth.CodeBadSignature},
		{name: "alg confusion: PEM file key as HS256 secret, dev option on", src: withDev(pemFile), token: signed(hsRSAPub), want: auth.CodeBadSignature},
		{name: "alg confusion: Ed25519 public key as HS256 secret, dev option on", src: withDev(staticKeys), token: signed(hsEdPub), want: auth.CodeBadSignature},
		{name: "alg swap EdDSA→RS256 on an Ed25519 kid", src: staticKeys, token: func(t *testing.T) string {
			return authtest.WithHeader(sign(t, ks.ed, good), map[string]any{"alg": "RS256", "kid": "ed-1"})
		}, want: auth.CodeUnknownKey},
		{name: "alg swap RS256→EdDSA on an RSA kid", src: jwksURL, token: func(t *testing.T) string {
			return authtest.WithHeader(sign(t, ks.rsa, good), map[string]any{"alg": "EdDSA", "kid": "rsa-1"})
		}, want: auth.CodeUnknownKey},
		{name: "alg swap EdDSA→RS256 without kid", src: staticKeys, token: func(t *testing.T) string {
			return authtest.WithHeader(sign(t, ks.ed, good), map[string]any{"alg": "RS256"})
		}, want: auth.CodeBadSignature},

		// Keys and signatures.
		{name: "unknown kid", src: staticKeys, token: signed(&unknownKid), want: auth.CodeUnknownKey},
		{name: "unknown kid, JWKS URL", src: jwksURL, token: signed(&unknownKid), want: auth.CodeUnknownKey},
		{name: "forged: right kid, wrong key", src: jwksFile, token: signed(ks.edForged), want: auth.CodeBadSignature},
		{name: "RS256 with a key not configured", src: staticKeys, token: signed(ks.rsa2), want: auth.CodeUnknownKey},
		{name: "tampered payload", src: staticKeys, token: func(t *testing.T) string {
			return authtest.Tamper(sign(t, ks.ed, claims(now, "docs", map[string]any{"read": []string{"x"}})), good)
		}, want: auth.CodeBadSignature},
		{name: "tampered payload RS256", src: jwksURL, token: func(t *testing.T) string {
			return authtest.Tamper(sign(t, ks.rsa, claims(now, "sub", "eve")), claims(now, "sub", "ada"))
		}, want: auth.CodeBadSignature},
		{name: "tampered signature", src: staticKeys, token: func(t *testing.T) string {
			s := sign(t, ks.ed, good)
			i := strings.LastIndex(s, ".") + 5
			b := []byte(s)
			b[i] = flip(b[i])
			return string(b)
		}, want: auth.CodeBadSignature},
		{name: "signature stripped", src: staticKeys, token: func(t *testing.T) string {
			s := sign(t, ks.ed, good)
			return s[:strings.LastIndex(s, ".")+1]
		}, want: auth.CodeBadSignature},

		// Time.
		{name: "expired", src: staticKeys, token: signed(ks.ed, "exp", now.Add(-time.Minute).Unix()), want: auth.CodeExpired},
		{name: "expired at exactly exp+leeway", src: staticKeys, token: signed(ks.ed, "exp", now.Add(-auth.DefaultLeeway).Unix()), want: auth.CodeExpired},
		{name: "expired by a second, no leeway", src: staticKeys, cfg: func(c *auth.Config) { c.Leeway = -1 },
			token: signed(ks.ed, "exp", now.Add(-time.Second).Unix()), want: auth.CodeExpired},
		{name: "exp of 0", src: staticKeys, token: signed(ks.ed, "exp", 0), want: auth.CodeExpired},
		{name: "nbf in the future", src: staticKeys, token: signed(ks.ed, "nbf", now.Add(time.Minute).Unix()), want: auth.CodeNotYetValid},
		{name: "iat in the future", src: staticKeys, token: signed(ks.ed, "iat", now.Add(time.Hour).Unix()), want: auth.CodeNotYetValid},

		// Issuer and audience.
		{name: "wrong iss", src: staticKeys, cfg: func(c *auth.Config) { c.Issuer = "https://id.example" },
			token: signed(ks.ed, "iss", "https://evil.example"), want: auth.CodeBadIssuer},
		{name: "missing iss", src: staticKeys, cfg: func(c *auth.Config) { c.Issuer = "https://id.example" },
			token: signed(ks.ed), want: auth.CodeBadIssuer},
		{name: "wrong aud", src: staticKeys, cfg: func(c *auth.Config) { c.Audience = "palimpsest" },
			token: signed(ks.ed, "aud", []string{"other"}), want: auth.CodeBadAudience},
		{name: "missing aud", src: staticKeys, cfg: func(c *auth.Config) { c.Audience = "palimpsest" },
			token: signed(ks.ed), want: auth.CodeBadAudience},

		// Required claims.
		{name: "missing sub", src: staticKeys, token: signed(ks.ed, "sub", del{}), want: auth.CodeMissingClaim},
		{name: "empty sub", src: staticKeys, token: signed(ks.ed, "sub", ""), want: auth.CodeMissingClaim},
		{name: "missing exp", src: staticKeys, token: signed(ks.ed, "exp", del{}), want: auth.CodeMissingClaim},

		// Malformed.
		{name: "empty", src: staticKeys, token: lit(""), want: auth.CodeMissingToken},
		{name: "one part", src: staticKeys, token: lit("abcdef"), want: auth.CodeMalformed},
		{name: "two parts", src: staticKeys, token: lit("eyJhbGciOiJFZERTQSJ9.e30"), want: auth.CodeMalformed},
		{name: "four parts", src: staticKeys, token: func(t *testing.T) string { return sign(t, ks.ed, good) + ".x" }, want: auth.CodeMalformed},
		{name: "header not base64url", src: staticKeys, token: lit("!!!.e30.c2ln"), want: auth.CodeMalformed},
		{name: "header padded base64", src: staticKeys, token: lit("eyJhbGciOiJFZERTQSJ9==.e30.c2ln"), want: auth.CodeMalformed},
		{name: "header not JSON", src: staticKeys, token: raw(ks.ed, `not json`, validPayload), want: auth.CodeMalformed},
		{name: "header a JSON array", src: staticKeys, token: raw(ks.ed, `["EdDSA"]`, validPayload), want: auth.CodeMalformed},
		{name: "header null", src: staticKeys, token: raw(ks.ed, `null`, validPayload), want: auth.CodeMalformed},
		{name: "alg a number", src: staticKeys, token: raw(ks.ed, `{"alg":7}`, validPayload), want: auth.CodeMalformed},
		{name: "alg missing", src: staticKeys, token: raw(ks.ed, `{"typ":"JWT"}`, validPayload), want: auth.CodeMalformed},
		{name: "kid a number", src: staticKeys, token: raw(ks.ed, `{"alg":"EdDSA","kid":1}`, validPayload), want: auth.CodeMalformed},
		{name: "crit header", src: staticKeys, token: raw(ks.ed, `{"alg":"EdDSA","kid":"ed-1","crit":["exp"]}`, validPayload), want: auth.CodeMalformed},
		{name: "payload not JSON", src: staticKeys, token: raw(ks.ed, `{"alg":"EdDSA","kid":"ed-1"}`, `{"sub":`), want: auth.CodeMalformed},
		{name: "exp a string", src: staticKeys, token: signed(ks.ed, "exp", "tomorrow"), want: auth.CodeMalformed},
		{name: "sub a number", src: staticKeys, token: signed(ks.ed, "sub", 42), want: auth.CodeMalformed},
		{name: "docs a string", src: staticKeys, token: signed(ks.ed, "docs", "all"), want: auth.CodeMalformed},
		{name: "docs.write a string", src: staticKeys, token: signed(ks.ed, "docs", map[string]any{"write": "*"}), want: auth.CodeMalformed},
		{name: "empty pattern", src: staticKeys, token: signed(ks.ed, "docs", map[string]any{"read": []string{""}}), want: auth.CodeMalformed},
		{name: "too many patterns", src: staticKeys, token: signed(ks.ed, "docs", map[string]any{"read": slices.Repeat([]string{"a"}, auth.MaxPatterns+1)}), want: auth.CodeMalformed},
		{name: "sub too long", src: staticKeys, token: signed(ks.ed, "sub", strings.Repeat("a", auth.MaxSubjectBytes+1)), want: auth.CodeMalformed},
		{name: "token too long", src: staticKeys, token: signed(ks.ed, "pad", strings.Repeat("p", auth.MaxTokenBytes)), want: auth.CodeMalformed},
		{name: "signature not base64url", src: staticKeys, token: func(t *testing.T) string { return sign(t, ks.ed, good) + "*" }, want: auth.CodeMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := authtest.NewClock(now)
			cfg := c.src(t, ks)
			cfg.Now = clock.Now
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			v := newVerifier(t, cfg)
			tok := c.token(t)
			p, err := v.Verify(context.Background(), tok)
			if c.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if c.accept != nil {
					c.accept(t, p)
				}
				return
			}
			if p != nil {
				t.Errorf("got a principal with the error")
			}
			checkErr(t, err, c.want, tok)
		})
	}
}

// flip changes a base64url character into another one.
func flip(b byte) byte {
	if b == 'A' {
		return 'B'
	}
	return 'A'
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The same token verifies until exp+leeway on the verifier's clock and is
// refused after it; Remaining counts down to exp.
func TestVerifyExpiryOverTime(t *testing.T) {
	ks := testKeys(t)
	clock := authtest.NewClock(t0)
	v := newVerifier(t, auth.Config{Keys: []auth.Key{authtest.VerifierKey(t, ks.ed)}, Now: clock.Now, Leeway: 10 * time.Second})
	tok := sign(t, ks.ed, claims(t0, "exp", t0.Add(time.Minute).Unix()))
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Remaining(clock.Now()); got != time.Minute {
		t.Errorf("Remaining = %v, want 1m", got)
	}
	clock.Advance(time.Minute + 9*time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	if got := p.Remaining(clock.Now()); got != 0 {
		t.Errorf("Remaining after exp = %v, want 0", got)
	}
	clock.Advance(time.Second)
	_, err = v.Verify(context.Background(), tok)
	checkErr(t, err, auth.CodeExpired, tok)
}

func TestNewVerifierConfigErrors(t *testing.T) {
	ks := testKeys(t)
	weak := weakRSAKey(t)
	priv := writeFile(t, "priv.pem", devKeyPEM(t))
	cases := []struct {
		name string
		cfg  auth.Config
	}{
		{"no key source", auth.Config{}},
		{"leeway too large", auth.Config{Keys: []auth.Key{authtest.VerifierKey(t, ks.ed)}, Leeway: time.Hour}},
		{"short HS256 secret", auth.Config{DevHS256Secret: []byte("short")}},
		{"weak RSA key", auth.Config{Keys: []auth.Key{weak}}},
		{"unsupported key type", auth.Config{Keys: []auth.Key{{ID: "x", Public: "not a key"}}}},
		{"missing PEM file", auth.Config{PublicKeyFile: "/nonexistent/keys.pem"}},
		{"PEM file with a private key", auth.Config{PublicKeyFile: priv}},
		{"PEM file without a block", auth.Config{PublicKeyFile: writeFile(t, "empty.pem", []byte("hello"))}},
		{"missing JWKS file", auth.Config{JWKSFile: "/nonexistent/jwks.json"}},
		{"JWKS file not JSON", auth.Config{JWKSFile: writeFile(t, "bad.json", []byte("{"))}},
		{"JWKS file without usable keys", auth.Config{JWKSFile: writeFile(t, "unusable.json", []byte(unusableJWKS))}},
		{"JWKS URL plain http to a remote host", auth.Config{JWKSURL: "http://id.example/jwks.json"}},
		{"JWKS URL not http", auth.Config{JWKSURL: "file:///etc/jwks.json"}},
		{"JWKS URL unreachable", auth.Config{JWKSURL: "http://127.0.0.1:1/jwks.json", JWKSTimeout: 2 * time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Logger = quiet
			v, err := auth.NewVerifier(context.Background(), c.cfg)
			if v != nil {
				v.Close()
			}
			checkErr(t, err, auth.CodeBadConfig, "")
		})
	}
}

// unusableJWKS holds only keys the verifier must skip: symmetric, EC, an
// RSA key for encryption, an RSA key for another alg, an X25519 key and a
// key whose key_ops exclude verify.
const unusableJWKS = `{"keys":[
 {"kty":"oct","kid":"h","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},
 {"kty":"EC","kid":"e","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
 {"kty":"RSA","kid":"r1","use":"enc","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
 {"kty":"RSA","kid":"r2","alg":"RS512","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
 {"kty":"OKP","kid":"x","crv":"X25519","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"},
 {"kty":"OKP","kid":"o","crv":"Ed25519","key_ops":["sign"],"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
]}`
