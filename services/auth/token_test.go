package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/services/auth"
)

const tok = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl"

func TestTokenFromRequest(t *testing.T) {
	type req struct {
		url    string
		auth   string
		cookie *http.Cookie
	}
	cases := []struct {
		name   string
		source auth.TokenSource
		req    req
		want   string
		code   auth.Code
	}{
		{name: "cookie", req: req{url: "/ws", cookie: &http.Cookie{Name: "palimpsest_token", Value: tok}}, want: tok},
		{name: "custom cookie name", source: auth.TokenSource{CookieName: "sid"},
			req: req{url: "/ws", cookie: &http.Cookie{Name: "sid", Value: tok}}, want: tok},
		{name: "default cookie ignored with a custom name", source: auth.TokenSource{CookieName: "sid"},
			req: req{url: "/ws", cookie: &http.Cookie{Name: "palimpsest_token", Value: tok}}, code: auth.CodeMissingToken},
		{name: "bearer", req: req{url: "/v1/documents/x", auth: "Bearer " + tok}, want: tok},
		{name: "bearer lower-case scheme, extra spaces", req: req{url: "/", auth: "bearer   " + tok + " "}, want: tok},
		{name: "bearer wins over cookie", req: req{url: "/", auth: "Bearer " + tok,
			cookie: &http.Cookie{Name: "palimpsest_token", Value: "other"}}, want: tok},
		{name: "basic auth ignored, cookie used", req: req{url: "/", auth: "Basic YTpi",
			cookie: &http.Cookie{Name: "palimpsest_token", Value: tok}}, want: tok},
		{name: "bearer without token", req: req{url: "/", auth: "Bearer "}, code: auth.CodeMalformed},
		{name: "bearer with spaces inside", req: req{url: "/", auth: "Bearer a b"}, code: auth.CodeMalformed},
		{name: "nothing", req: req{url: "/ws"}, code: auth.CodeMissingToken},
		{name: "empty cookie", req: req{url: "/ws", cookie: &http.Cookie{Name: "palimpsest_token", Value: ""}}, code: auth.CodeMissingToken},
		{name: "unrelated query", req: req{url: "/ws?doc=notes-42&at=17", cookie: &http.Cookie{Name: "palimpsest_token", Value: tok}}, want: tok},

		// A token in the URL is refused, whatever else the request carries.
		{name: "token param", req: req{url: "/ws?token=" + tok}, code: auth.CodeTokenInURL},
		{name: "access_token param", req: req{url: "/ws?access_token=" + tok}, code: auth.CodeTokenInURL},
		{name: "jwt param", req: req{url: "/ws?jwt=" + tok}, code: auth.CodeTokenInURL},
		{name: "id_token param", req: req{url: "/ws?id_token=" + tok}, code: auth.CodeTokenInURL},
		{name: "param name case-insensitive", req: req{url: "/ws?Access_Token=" + tok}, code: auth.CodeTokenInURL},
		{name: "empty token param", req: req{url: "/ws?token="}, code: auth.CodeTokenInURL},
		{name: "token param beside a good cookie", req: req{url: "/ws?token=" + tok,
			cookie: &http.Cookie{Name: "palimpsest_token", Value: tok}}, code: auth.CodeTokenInURL},
		{name: "token param beside a bearer header", req: req{url: "/ws?jwt=x", auth: "Bearer " + tok}, code: auth.CodeTokenInURL},
		{name: "JWT-shaped value under another name", req: req{url: "/ws?doc=notes&t=" + tok,
			cookie: &http.Cookie{Name: "palimpsest_token", Value: tok}}, code: auth.CodeTokenInURL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, c.req.url, nil)
			if c.req.auth != "" {
				r.Header.Set("Authorization", c.req.auth)
			}
			if c.req.cookie != nil {
				r.AddCookie(c.req.cookie)
			}
			var got string
			var err error
			if c.source == (auth.TokenSource{}) {
				got, err = auth.TokenFromRequest(r)
			} else {
				got, err = c.source.FromRequest(r)
			}
			if c.code != "" {
				if got != "" {
					t.Errorf("returned a token with the error")
				}
				checkErr(t, err, c.code, tok)
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestTokenCookie(t *testing.T) {
	exp := t0.Add(time.Hour)
	for _, insecure := range []bool{false, true} {
		c := auth.TokenSource{}.Cookie(tok, exp, insecure)
		if c.Name != auth.DefaultCookieName || c.Value != tok || !c.HttpOnly || c.Secure == insecure ||
			c.SameSite != http.SameSiteStrictMode || c.Path != "/" || !c.Expires.Equal(exp) {
			t.Errorf("Cookie(insecure=%v) = %+v", insecure, c)
		}
		if err := c.Valid(); err != nil {
			t.Errorf("invalid cookie: %v", err)
		}
	}
	// What the handler sets is what FromRequest reads.
	w := httptest.NewRecorder()
	http.SetCookie(w, auth.TokenSource{CookieName: "sid"}.Cookie(tok, exp, false))
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	for _, c := range w.Result().Cookies() {
		r.AddCookie(c)
	}
	if got, err := (auth.TokenSource{CookieName: "sid"}).FromRequest(r); err != nil || got != tok {
		t.Fatalf("round trip: %q, %v", got, err)
	}
}
