package auth_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/auth/authtest"
)

// FuzzVerify: any input is either the one valid token or refused with a
// known code, without a panic and without echoing the input.
func FuzzVerify(f *testing.F) {
	ks := testKeys(f)
	clock := authtest.NewClock(t0)
	valid := authtest.Sign(f, ks.ed, claims(t0))
	f.Add(valid)
	f.Add(authtest.Sign(f, ks.rsa, claims(t0, "exp", t0.Add(-time.Hour).Unix())))
	f.Add(authtest.NoneToken(claims(t0)))
	f.Add(authtest.Tamper(valid, claims(t0, "sub", "eve")))
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJFZERTQSJ9.e30.")
	v, err := auth.NewVerifier(context.Background(), auth.Config{
		Keys:   []auth.Key{authtest.VerifierKey(f, ks.ed), authtest.VerifierKey(f, ks.rsa)},
		Now:    clock.Now,
		Logger: quiet,
	})
	if err != nil {
		f.Fatal(err)
	}
	codes := map[auth.Code]bool{
		auth.CodeMissingToken: true, auth.CodeMalformed: true, auth.CodeAlgNotAllowed: true,
		auth.CodeUnknownKey: true, auth.CodeBadSignature: true, auth.CodeExpired: true,
		auth.CodeNotYetValid: true, auth.CodeMissingClaim: true,
	}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.Verify(context.Background(), tok)
		if err == nil {
			if p == nil || p.Subject == "" || p.ExpiresAt.IsZero() {
				t.Fatalf("accepted with principal %+v", p)
			}
			return
		}
		if p != nil || !codes[auth.CodeOf(err)] {
			t.Fatalf("principal %v, error %v", p, err)
		}
		if len(tok) >= 16 && strings.Contains(err.Error(), tok) {
			t.Fatalf("error echoes the input: %v", err)
		}
	})
}

// FuzzMatchDoc checks MatchDoc against its specification written as a
// regular expression: '*' is (?s).*, every other byte is itself.
func FuzzMatchDoc(f *testing.F) {
	for _, s := range [][2]string{
		{"*", "x"}, {"team-a-*", "team-a-1"}, {"a*b*c", "axbyc"}, {"*a*a*b", "aaaa"},
		{"?[x]", "?[x]"}, {"", "x"}, {"x", ""}, {"é*", "étude"}, {"**", "/"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, doc string) {
		if len(pattern) > 64 || len(doc) > 64 {
			return
		}
		parts := strings.Split(pattern, "*")
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		// Byte-wise: match on Latin-1 views of both strings so invalid
		// UTF-8 compares byte for byte too.
		re := regexp.MustCompile(`^(?s)` + latin1(strings.Join(parts, ".*")) + `$`)
		want := pattern != "" && doc != "" && re.MatchString(latin1(doc))
		if got := auth.MatchDoc(pattern, doc); got != want {
			t.Fatalf("MatchDoc(%q, %q) = %v, spec says %v", pattern, doc, got, want)
		}
	})
}

// latin1 maps every byte of s to the rune of the same value.
func latin1(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}
