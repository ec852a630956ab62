package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/palimpsest-editor/palimpsest/services/auth"
)

func TestOriginAllowed(t *testing.T) {
	prod := []string{"https://editor.example.com", "http://localhost:8080/"}
	cases := []struct {
		name    string
		host    string
		origins []string // Origin headers sent
		allowed []string
		want    bool
	}{
		{"no Origin header", "palimpsest.example", nil, prod, true},
		{"no Origin header, same-origin mode", "palimpsest.example", nil, nil, true},
		{"two Origin headers", "x", []string{"https://editor.example.com", "https://editor.example.com"}, prod, false},

		{"exact", "api.example.com", []string{"https://editor.example.com"}, prod, true},
		{"case and default port", "api", []string{"HTTPS://Editor.Example.com:443"}, prod, true},
		{"trailing slash in the entry", "api", []string{"http://localhost:8080"}, prod, true},
		{"other port", "api", []string{"http://localhost:8081"}, prod, false},
		{"other scheme", "api", []string{"http://editor.example.com"}, prod, false},
		{"subdomain is not the domain", "api", []string{"https://evil.editor.example.com"}, prod, false},
		{"suffix attack", "api", []string{"https://editor.example.com.evil.net"}, prod, false},
		{"null origin", "api", []string{"null"}, prod, false},
		{"origin with a path", "api", []string{"https://editor.example.com/page"}, prod, false},
		{"garbage origin", "api", []string{"::::"}, prod, false},
		{"entry that is not an origin never matches", "api", []string{"https://editor.example.com"}, []string{"https://editor.example.com/app"}, false},

		{"star allows anything", "api", []string{"https://anywhere.net"}, []string{"*"}, true},
		{"star allows null", "api", []string{"null"}, []string{"https://x.example", "*"}, true},

		{"same origin", "palimpsest.example:8443", []string{"https://palimpsest.example:8443"}, nil, true},
		{"same origin, default port in Host", "palimpsest.example:443", []string{"https://palimpsest.example"}, nil, true},
		{"same origin, default port in Origin", "localhost", []string{"http://localhost:80"}, nil, true},
		{"same origin, case", "Palimpsest.Example", []string{"https://palimpsest.example"}, []string{}, true},
		{"same origin, IPv6", "[::1]:8080", []string{"http://[::1]:8080"}, nil, true},
		{"cross origin", "palimpsest.example", []string{"https://evil.example"}, nil, false},
		{"cross port", "localhost:8080", []string{"http://localhost:3000"}, nil, false},
		{"null is never same origin", "null", []string{"null"}, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			r.Host = c.host
			for _, o := range c.origins {
				r.Header.Add("Origin", o)
			}
			if got := auth.OriginAllowed(r, c.allowed); got != c.want {
				t.Errorf("OriginAllowed(Origin %q, Host %q, %q) = %v, want %v", c.origins, c.host, c.allowed, got, c.want)
			}
		})
	}
}
