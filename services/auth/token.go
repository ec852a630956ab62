package auth

import (
	"net/http"
	"strings"
	"time"
)

// DefaultCookieName is the cookie that carries the token when
// TokenSource.CookieName is empty.
const DefaultCookieName = "palimpsest_token"

// URLTokenParams are query parameter names (compared case-insensitively)
// whose presence makes FromRequest refuse the request with
// CodeTokenInURL.
var URLTokenParams = []string{"token", "access_token", "jwt", "id_token"}

// TokenSource reads the token of an HTTP request (a WebSocket upgrade or a
// read API call). The token travels in an HttpOnly cookie or an
// Authorization: Bearer header — never in the URL, where it would land in
// logs, proxies and browser history. A WebSocket client that can set
// neither sends it in its first message, which the gateway passes to
// Verifier.Verify directly.
type TokenSource struct {
	// CookieName is the token cookie; empty means DefaultCookieName.
	CookieName string
}

// TokenFromRequest is TokenSource{}.FromRequest.
func TokenFromRequest(r *http.Request) (string, error) {
	return TokenSource{}.FromRequest(r)
}

func (s TokenSource) cookieName() string {
	if s.CookieName == "" {
		return DefaultCookieName
	}
	return s.CookieName
}

// FromRequest returns the request's token, unverified:
//
//  1. If the URL's query has a parameter named in URLTokenParams, or any
//     query value that looks like a JWT (three dot-separated parts, the
//     first starting "eyJ"), the request is refused with CodeTokenInURL,
//     even when a cookie or header carries a token too: a token that has
//     been in a URL must be treated as leaked, and refusing it every time
//     stops a client from depending on it by accident.
//  2. Otherwise an "Authorization: Bearer <token>" header (scheme matched
//     case-insensitively) wins; other schemes are ignored. A Bearer header
//     with no token or with spaces in it is CodeMalformed.
//  3. Otherwise the cookie's value.
//  4. Otherwise CodeMissingToken.
//
// No error message contains the token.
func (s TokenSource) FromRequest(r *http.Request) (string, error) {
	if r.URL != nil {
		for name, vals := range r.URL.Query() {
			for _, p := range URLTokenParams {
				if strings.EqualFold(name, p) {
					return "", errorf(CodeTokenInURL, nil, "query parameter %q may not carry a token; use the %s cookie or an Authorization header", truncate(name, 32), s.cookieName())
				}
			}
			for _, v := range vals {
				if looksLikeJWT(v) {
					return "", errorf(CodeTokenInURL, nil, "query parameter %q holds a token; use the %s cookie or an Authorization header", truncate(name, 32), s.cookieName())
				}
			}
		}
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			tok := strings.TrimSpace(rest)
			switch {
			case tok == "":
				return "", errorf(CodeMalformed, nil, "Authorization: Bearer without a token")
			case strings.ContainsAny(tok, " \t"):
				return "", errorf(CodeMalformed, nil, "Authorization: Bearer value has spaces")
			}
			return tok, nil
		}
	}
	if c, err := r.Cookie(s.cookieName()); err == nil && c.Value != "" {
		return c.Value, nil
	}
	return "", errorf(CodeMissingToken, nil, "no %s cookie and no Authorization: Bearer header", s.cookieName())
}

// looksLikeJWT reports whether v has the shape of a compact JWS whose header
// is a base64url JSON object ("eyJ" is the encoding of `{"`).
func looksLikeJWT(v string) bool {
	return strings.HasPrefix(strings.TrimSpace(v), "eyJ") && strings.Count(v, ".") == 2
}

// Cookie returns the cookie that carries token until expires: HttpOnly (no
// script can read it), SameSite=Strict, Path "/", and Secure unless
// insecure is set (plain-http development on localhost).
func (s TokenSource) Cookie(token string, expires time.Time, insecure bool) *http.Cookie {
	return &http.Cookie{
		Name:     s.cookieName(),
		Value:    token,
		Path:     "/",
		Expires:  expires,
		HttpOnly: true,
		Secure:   !insecure,
		SameSite: http.SameSiteStrictMode,
	}
}
