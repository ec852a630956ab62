package auth

import (
	"fmt"
	"unicode/utf8"
)

// DocsClaim is the name of the private claim that carries document
// permissions.
const DocsClaim = "docs"

// Limits on the docs claim, checked by Verify (a token over them is
// CodeMalformed). They bound the cost of CanRead and CanWrite.
const (
	MaxPatterns     = 256 // per list (read, write)
	MaxPatternBytes = 256
)

// Docs is the per-document permission claim:
//
//	"docs": {"read": ["*"], "write": ["team-a-*", "notes-42"]}
//
// Each list holds patterns (see MatchDoc). Both lists may be absent or
// empty; a token without a docs claim is valid but grants no document.
// Write implies read: a document matched by a write pattern is readable too,
// because an editor cannot write a document it cannot see.
type Docs struct {
	Read  []string `json:"read,omitempty"`
	Write []string `json:"write,omitempty"`
}

// canRead reports whether a read or a write pattern matches doc.
func (d Docs) canRead(doc string) bool {
	return matchAny(d.Read, doc) || matchAny(d.Write, doc)
}

// canWrite reports whether a write pattern matches doc.
func (d Docs) canWrite(doc string) bool {
	return matchAny(d.Write, doc)
}

func matchAny(patterns []string, doc string) bool {
	if doc == "" {
		return false
	}
	for _, p := range patterns {
		if MatchDoc(p, doc) {
			return true
		}
	}
	return false
}

// validate checks the limits and that no pattern is empty or invalid UTF-8.
func (d Docs) validate() error {
	for _, l := range []struct {
		name     string
		patterns []string
	}{{"read", d.Read}, {"write", d.Write}} {
		if len(l.patterns) > MaxPatterns {
			return fmt.Errorf("docs.%s has %d patterns, more than %d", l.name, len(l.patterns), MaxPatterns)
		}
		for i, p := range l.patterns {
			switch {
			case p == "":
				return fmt.Errorf("docs.%s[%d] is empty", l.name, i)
			case len(p) > MaxPatternBytes:
				return fmt.Errorf("docs.%s[%d] is %d bytes, more than %d", l.name, i, len(p), MaxPatternBytes)
			case !utf8.ValidString(p):
				return fmt.Errorf("docs.%s[%d] is not valid UTF-8", l.name, i)
			}
		}
	}
	return nil
}

// MatchDoc reports whether the document id doc matches pattern.
//
// The syntax is deliberately small. '*' matches any sequence of bytes,
// including the empty one and including '/'; every other byte, '?', '[' and
// '\' among them, matches only itself. Matching is byte-wise and
// case-sensitive, over the whole id. So:
//
//	"*"          every document
//	"notes-42"   exactly notes-42
//	"team-a-*"   every id that starts with "team-a-" (not "team-a" itself)
//	"team-a/*"   every id under "team-a/", at any depth
//	"*-draft"    every id that ends with "-draft"
//	"a*b*c"      ids that start with a, end with c and have a b between
//
// An empty pattern or an empty doc matches nothing. The cost is
// O(len(pattern)·len(doc)) in the worst case and linear in the usual one.
func MatchDoc(pattern, doc string) bool {
	if pattern == "" || doc == "" {
		return false
	}
	// Greedy match with backtracking to the most recent star: the classic
	// wildcard algorithm; a star absorbs one more byte each time the rest
	// fails to match.
	p, d := 0, 0
	star, mark := -1, 0
	for d < len(doc) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, d
			p++
		case p < len(pattern) && pattern[p] == doc[d]:
			p++
			d++
		case star >= 0:
			mark++
			p, d = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
