package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/palimpsest-editor/palimpsest/services/auth"
)

func TestErrorCodes(t *testing.T) {
	cases := []struct {
		sentinel *auth.Error
		code     auth.Code
		text     string
		status   int
	}{
		{auth.ErrMissingToken, auth.CodeMissingToken, "auth.missing_token", http.StatusUnauthorized},
		{auth.ErrTokenInURL, auth.CodeTokenInURL, "auth.token_in_url", http.StatusBadRequest},
		{auth.ErrMalformed, auth.CodeMalformed, "auth.malformed", http.StatusUnauthorized},
		{auth.ErrAlgNotAllowed, auth.CodeAlgNotAllowed, "auth.alg_not_allowed", http.StatusUnauthorized},
		{auth.ErrUnknownKey, auth.CodeUnknownKey, "auth.unknown_key", http.StatusUnauthorized},
		{auth.ErrBadSignature, auth.CodeBadSignature, "auth.bad_signature", http.StatusUnauthorized},
		{auth.ErrExpired, auth.CodeExpired, "auth.expired", http.StatusUnauthorized},
		{auth.ErrNotYetValid, auth.CodeNotYetValid, "auth.not_yet_valid", http.StatusUnauthorized},
		{auth.ErrMissingClaim, auth.CodeMissingClaim, "auth.missing_claim", http.StatusUnauthorized},
		{auth.ErrBadIssuer, auth.CodeBadIssuer, "auth.bad_issuer", http.StatusUnauthorized},
		{auth.ErrBadAudience, auth.CodeBadAudience, "auth.bad_audience", http.StatusUnauthorized},
		{auth.ErrForbidden, auth.CodeForbidden, "auth.forbidden", http.StatusForbidden},
		{auth.ErrBadConfig, auth.CodeBadConfig, "auth.bad_config", http.StatusInternalServerError},
	}
	seen := map[auth.Code]bool{}
	for _, c := range cases {
		if c.sentinel.Code != c.code || string(c.code) != c.text || c.code.HTTPStatus() != c.status {
			t.Errorf("%s: sentinel %q, status %d", c.text, c.sentinel.Code, c.code.HTTPStatus())
		}
		if seen[c.code] {
			t.Errorf("%s twice", c.code)
		}
		seen[c.code] = true
		// Wrapped, the code is still found.
		err := fmt.Errorf("gateway: %w", &auth.Error{Code: c.code, Msg: "m"})
		if !errors.Is(err, c.sentinel) || auth.CodeOf(err) != c.code {
			t.Errorf("%s: errors.Is/CodeOf fail through wrapping", c.code)
		}
		for _, other := range cases {
			if other.code != c.code && errors.Is(err, other.sentinel) {
				t.Errorf("%s matches %s", c.code, other.code)
			}
		}
	}
	if auth.CodeOf(errors.New("x")) != "" || auth.CodeOf(nil) != "" {
		t.Error("CodeOf of a foreign error is not empty")
	}
	if auth.Code("auth.nope").HTTPStatus() != http.StatusInternalServerError {
		t.Error("unknown code is not 500")
	}
	cause := errors.New("disk")
	e := &auth.Error{Code: auth.CodeBadConfig, Msg: "key file", Err: cause}
	if e.Error() != "auth.bad_config: key file: disk" || !errors.Is(e, cause) {
		t.Errorf("Error() = %q", e.Error())
	}
}

func TestNewIssuer(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ks := testKeys(t)
	for _, c := range []struct {
		key any
		alg string
	}{
		{ed, auth.AlgEdDSA},
		{ks.rsa.Key, auth.AlgRS256},
		{[]byte("secret"), auth.AlgHS256},
	} {
		iss, err := auth.NewIssuer(c.key, "k")
		if err != nil || iss.Alg != c.alg || iss.KeyID != "k" {
			t.Errorf("NewIssuer(%T) = %v, %v", c.key, iss, err)
		}
	}
	if _, err := auth.NewIssuer("not a key", ""); auth.CodeOf(err) != auth.CodeBadConfig {
		t.Errorf("NewIssuer(string): %v", err)
	}
	hs, _ := auth.NewIssuer([]byte("secret"), "")
	if _, err := hs.VerifierKey(); auth.CodeOf(err) != auth.CodeBadConfig {
		t.Errorf("HS256 VerifierKey: %v", err)
	}
	none := &auth.Issuer{Alg: "none", Key: ed}
	if _, err := none.Sign(map[string]any{"sub": "x"}); auth.CodeOf(err) != auth.CodeBadConfig {
		t.Errorf("Sign with alg none: %v", err)
	}
	mismatch := &auth.Issuer{Alg: auth.AlgRS256, Key: ed}
	if _, err := mismatch.Sign(map[string]any{"sub": "x"}); auth.CodeOf(err) != auth.CodeBadConfig {
		t.Errorf("Sign RS256 with an Ed25519 key: %v", err)
	}
}
