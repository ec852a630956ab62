package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// CookieName is the HttpOnly cookie that carries the token (the same name
// services/auth reads by default).
const CookieName = "palimpsest_token"

// Identity is who a verified token names.
type Identity struct {
	Subject string    `json:"subject"`
	Name    string    `json:"name,omitempty"`
	Expires time.Time `json:"expires"`
}

// VerifyFunc verifies a token (signature, expiry, issuer) and returns who it
// names; any error refuses it. The token never appears in the error returned
// to the client.
type VerifyFunc func(ctx context.Context, token string) (Identity, error)

// SessionHandler serves /v1/session, the editor's login for development and
// its "who am I":
//
//	POST   {"token": "<jwt>"}  verifies the token and sets it as the HttpOnly,
//	                           SameSite=Strict cookie CookieName (Secure over
//	                           HTTPS) until it expires; answers the Identity.
//	GET                        the Identity of the cookie's token, or 401.
//	DELETE                     clears the cookie.
//
// The token travels in the request body, never in a URL. POST requires
// Content-Type application/json and, when the browser sends an Origin, the
// request's own origin, so another site cannot log a browser in (CSRF).
func SessionHandler(verify VerifyFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		switch r.Method {
		case http.MethodGet:
			c, err := r.Cookie(CookieName)
			if err != nil || c.Value == "" {
				jsonError(w, http.StatusUnauthorized, "unauthenticated", "not logged in")
				return
			}
			id, err := verify(r.Context(), c.Value)
			if err != nil {
				clearCookie(w, r)
				jsonError(w, http.StatusUnauthorized, "unauthenticated", "the session's token is not valid: "+err.Error())
				return
			}
			writeJSON(w, http.StatusOK, id)
		case http.MethodPost:
			if !sameOrigin(r) {
				jsonError(w, http.StatusForbidden, "forbidden", "origin not allowed")
				return
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
				jsonError(w, http.StatusUnsupportedMediaType, "bad_query", "send {\"token\": ...} as application/json")
				return
			}
			var body struct {
				Token string `json:"token"`
			}
			if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&body); err != nil || body.Token == "" {
				jsonError(w, http.StatusBadRequest, "bad_query", "send {\"token\": ...}")
				return
			}
			id, err := verify(r.Context(), strings.TrimSpace(body.Token))
			if err != nil {
				jsonError(w, http.StatusUnauthorized, "unauthenticated", "the token was refused: "+err.Error())
				return
			}
			http.SetCookie(w, &http.Cookie{Name: CookieName, Value: strings.TrimSpace(body.Token), Path: "/", Expires: id.Expires,
				HttpOnly: true, Secure: isHTTPS(r), SameSite: http.SameSiteStrictMode})
			writeJSON(w, http.StatusOK, id)
		case http.MethodDelete:
			if !sameOrigin(r) {
				jsonError(w, http.StatusForbidden, "forbidden", "origin not allowed")
				return
			}
			clearCookie(w, r)
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", "GET, POST, DELETE")
			jsonError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed")
		}
	})
}

func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: isHTTPS(r), SameSite: http.SameSiteStrictMode})
}

func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// sameOrigin reports whether the request has no Origin or its own.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

// ErrNoToken is what a VerifyFunc may return for an empty token.
var ErrNoToken = errors.New("web: no token")
