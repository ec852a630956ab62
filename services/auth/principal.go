package auth

import (
	"time"
)

// Access is what a caller wants to do with a document.
type Access uint8

const (
	Read Access = iota + 1
	Write
)

// String returns "read" or "write".
func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	default:
		return "access(?)"
	}
}

// Principal is the authenticated caller, built by Verifier.Verify from a
// token whose signature and claims have been checked. A Principal is
// immutable after Verify returns it and safe for concurrent use.
//
// The methods are nil-safe: a nil *Principal may do nothing.
type Principal struct {
	// Subject is the token's sub: the user id the server stamps on every
	// op as its author. Never empty.
	Subject string
	// Name is the optional display name (the "name" claim).
	Name string
	// Issuer and Audience are the token's iss and aud, as sent.
	Issuer   string
	Audience []string
	// IssuedAt is iat, zero when absent. ExpiresAt is exp, never zero.
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Docs are the document permissions (see Docs and MatchDoc).
	Docs Docs
}

// CanRead reports whether the principal may read doc: a read or a write
// pattern matches it (write implies read).
func (p *Principal) CanRead(doc string) bool {
	return p != nil && p.Docs.canRead(doc)
}

// CanWrite reports whether the principal may write doc: a write pattern
// matches it.
func (p *Principal) CanWrite(doc string) bool {
	return p != nil && p.Docs.canWrite(doc)
}

// Authorize returns nil when the principal may have access a to doc, else an
// *Error with CodeForbidden that names the subject, the access and the doc.
func (p *Principal) Authorize(doc string, a Access) error {
	ok := false
	switch a {
	case Read:
		ok = p.CanRead(doc)
	case Write:
		ok = p.CanWrite(doc)
	}
	if ok {
		return nil
	}
	sub := ""
	if p != nil {
		sub = p.Subject
	}
	return errorf(CodeForbidden, nil, "subject %q may not %s document %q", sub, a, doc)
}

// Remaining returns how long the token stays valid after now: ExpiresAt
// minus now, without the verifier's leeway, and at most zero once expired.
// A gateway arms a timer with it and closes the connection (or asks for a
// fresh token) when it fires, so a long-lived connection never outlives its
// token.
func (p *Principal) Remaining(now time.Time) time.Duration {
	if p == nil {
		return 0
	}
	d := p.ExpiresAt.Sub(now)
	if d < 0 {
		return 0
	}
	return d
}
