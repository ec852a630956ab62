package auth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/services/auth"
)

func TestMatchDoc(t *testing.T) {
	cases := []struct {
		pattern, doc string
		want         bool
	}{
		{"notes-42", "notes-42", true},
		{"notes-42", "notes-420", false},
		{"notes-42", "notes-4", false},
		{"notes-42", "Notes-42", false}, // case-sensitive
		{"*", "anything", true},
		{"*", "team-a/deep/doc", true}, // '*' crosses '/'
		{"*", "", false},               // empty doc matches nothing
		{"", "", false},
		{"", "notes", false},
		{"team-a-*", "team-a-plan", true},
		{"team-a-*", "team-a-", true}, // '*' matches the empty run
		{"team-a-*", "team-a", false},
		{"team-a-*", "team-b-plan", false},
		{"team-a/*", "team-a/x", true},
		{"team-a/*", "team-a/x/y", true},
		{"team-a/*", "team-a", false},
		{"team-a/*", "team-ab/x", false},
		{"*-draft", "q3-draft", true},
		{"*-draft", "q3-draft-2", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a*b*c", "acb", false},
		{"a**b", "ab", true},                            // '**' is '*'
		{"*a*a*a*a*b", strings.Repeat("a", 200), false}, // backtracking stays bounded
		{"?", "x", false},                               // '?' is literal
		{"?", "?", true},
		{"[ab]", "a", false}, // '[' is literal
		{"[ab]", "[ab]", true},
		{`\*`, "x", false}, // '\' is literal, then '*'
		{`\*`, `\x`, true},
		{"é*", "ecole", false}, // byte-wise: no normalization
		{"é*", "étude", true},
	}
	for _, c := range cases {
		if got := auth.MatchDoc(c.pattern, c.doc); got != c.want {
			t.Errorf("MatchDoc(%q, %q) = %v, want %v", c.pattern, c.doc, got, c.want)
		}
	}
}

func TestPrincipalAccess(t *testing.T) {
	p := &auth.Principal{Subject: "ada", Docs: auth.Docs{
		Read:  []string{"public-*"},
		Write: []string{"team-a-*", "notes-42"},
	}}
	cases := []struct {
		doc         string
		read, write bool
	}{
		{"public-faq", true, false},
		{"team-a-plan", true, true}, // write implies read
		{"notes-42", true, true},
		{"notes-43", false, false},
		{"team-b-plan", false, false},
		{"", false, false},
	}
	for _, c := range cases {
		if got := p.CanRead(c.doc); got != c.read {
			t.Errorf("CanRead(%q) = %v, want %v", c.doc, got, c.read)
		}
		if got := p.CanWrite(c.doc); got != c.write {
			t.Errorf("CanWrite(%q) = %v, want %v", c.doc, got, c.write)
		}
		for _, a := range []struct {
			access auth.Access
			ok     bool
		}{{auth.Read, c.read}, {auth.Write, c.write}} {
			err := p.Authorize(c.doc, a.access)
			if a.ok {
				if err != nil {
					t.Errorf("Authorize(%q, %s) = %v", c.doc, a.access, err)
				}
				continue
			}
			if !errors.Is(err, auth.ErrForbidden) || auth.CodeOf(err).HTTPStatus() != 403 {
				t.Errorf("Authorize(%q, %s) = %v, want %s", c.doc, a.access, err, auth.CodeForbidden)
			}
			if err != nil && !strings.Contains(err.Error(), `"ada"`) {
				t.Errorf("forbidden error does not name the subject: %v", err)
			}
		}
	}

	var none *auth.Principal
	if none.CanRead("x") || none.CanWrite("x") || none.Authorize("x", auth.Read) == nil || none.Remaining(t0) != 0 {
		t.Error("a nil principal grants something")
	}
	if err := p.Authorize("notes-42", auth.Access(9)); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("unknown access: %v", err)
	}
	all := &auth.Principal{Subject: "root", Docs: auth.Docs{Write: []string{"*"}}}
	if !all.CanRead("any-doc") || !all.CanWrite("any-doc") {
		t.Error(`write "*" does not grant everything`)
	}
}

func TestRemaining(t *testing.T) {
	p := &auth.Principal{Subject: "ada", ExpiresAt: t0.Add(90 * time.Second)}
	for _, c := range []struct {
		now  time.Time
		want time.Duration
	}{
		{t0, 90 * time.Second},
		{t0.Add(90 * time.Second), 0},
		{t0.Add(time.Hour), 0},
	} {
		if got := p.Remaining(c.now); got != c.want {
			t.Errorf("Remaining(%v) = %v, want %v", c.now, got, c.want)
		}
	}
}
