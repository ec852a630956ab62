package auth

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// OriginAllowed reports whether the Origin of a WebSocket upgrade request is
// acceptable, which stops other sites' pages from opening connections with
// the user's cookie (cross-site WebSocket hijacking):
//
//   - No Origin header: allowed. Browsers always send Origin on WebSocket
//     upgrades, so only non-browser clients (the Go client, tools) omit it,
//     and they cannot be tricked into sending a victim's cookie.
//   - More than one Origin header, or one that is not an origin: refused.
//   - allowed holds "*": any origin, "null" included (development only).
//   - allowed is empty: same origin only, meaning the Origin's host and port
//     equal the request's Host.
//   - Otherwise the Origin must equal an entry of allowed, such as
//     "https://editor.example.com" or "http://localhost:8080".
//
// Origins are compared after normalization: scheme and host lower-cased,
// the default port (:80 for http, :443 for https) dropped, one trailing "/"
// dropped. There are no wildcards but the lone "*"; an entry that is not an
// origin (with a path, a query or user info) matches nothing. "null" (sent
// by sandboxed frames and file: pages) is never same-origin and matches only
// "*".
func OriginAllowed(r *http.Request, allowed []string) bool {
	vals := r.Header.Values("Origin")
	switch len(vals) {
	case 0:
		return true
	case 1:
	default:
		return false
	}
	for _, a := range allowed {
		if a == "*" {
			return true
		}
	}
	origin, ok := normalizeOrigin(vals[0])
	if !ok {
		return false
	}
	if len(allowed) == 0 {
		scheme, hostport, _ := strings.Cut(origin, "://")
		return hostport == normalizeHost(scheme, r.Host)
	}
	for _, a := range allowed {
		if n, ok := normalizeOrigin(a); ok && n == origin {
			return true
		}
	}
	return false
}

// normalizeOrigin returns "scheme://host[:port]" lower-cased without a
// default port, or false when s is not a plain origin.
func normalizeOrigin(s string) (string, bool) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme + "://" + normalizeHost(scheme, u.Host), true
}

// normalizeHost lower-cases host[:port] and drops the scheme's default port.
func normalizeHost(scheme, hostport string) string {
	hostport = strings.ToLower(hostport)
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport // no port
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return hostport
}
