package read

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/projections/kvstate"
	"github.com/palimpsest-editor/palimpsest/schemas"
	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/auth/authtest"
)

// api is the HTTP API on a log with documents "secret" and "open".
type api struct {
	srv   *httptest.Server
	iss   *auth.Issuer
	svc   *Service
	lasts map[string]uint64
}

func newAPI(t *testing.T) *api {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	l := startLog(t)
	w := newWriter(t, l, 7)
	lasts := map[string]uint64{}
	for _, doc := range []string{"secret", "open", "secret", "open"} {
		seqs := w.edit(ctx, doc, 5)
		lasts[doc] = seqs[len(seqs)-1]
	}
	state, err := kvstate.Open(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Log: l, State: state})
	if err != nil {
		t.Fatal(err)
	}
	iss := authtest.EdDSAIssuer(t, "k1")
	v, err := auth.NewVerifier(ctx, auth.Config{Keys: []auth.Key{authtest.VerifierKey(t, iss)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	h, err := s.Handler(HTTPConfig{Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &api{srv: srv, iss: iss, svc: s, lasts: lasts}
}

func (a *api) token(t *testing.T, docs auth.Docs) string {
	t.Helper()
	tok, err := a.iss.Issue("ada", "Ada", docs, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d, body %q: not {\"error\":{\"code\",\"message\"}} (%v)", r.status, r.body, err)
	}
	return e.Error.Code
}

// get requests path with the token as a Bearer header (none when empty).
func (a *api) get(t *testing.T, path, token string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest("GET", a.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("GET %s: Cache-Control %q, want no-store", path, cc)
	}
	return reply{resp.StatusCode, resp.Header, body}
}

// docPaths are every document route of doc, with parameters.
func docPaths(doc string, v uint64) []string {
	s := strconv.FormatUint(v, 10)
	return []string{"/v1/documents/" + doc, "/v1/documents/" + doc + "?at=" + s, "/v1/documents/" + doc + "?at=2020-01-01T00:00:00Z",
		"/v1/documents/" + doc + "/history", "/v1/documents/" + doc + "/diff?from=0&to=" + s, "/v1/documents/" + doc + "/blame?at=" + s}
}

// TestAuthNeverRevealsExistence: without a valid token every route is 401
// before any lookup; with a token that may not read the document, an
// existing document answers byte for byte like one that does not exist.
func TestAuthNeverRevealsExistence(t *testing.T) {
	a := newAPI(t)
	good := a.token(t, auth.Docs{Read: []string{"open"}})
	expired, _ := (&auth.Issuer{Alg: a.iss.Alg, Key: a.iss.Key, KeyID: a.iss.KeyID, Now: func() time.Time { return time.Now().Add(-time.Hour) }}).Issue("ada", "", auth.Docs{Read: []string{"*"}}, time.Minute)
	other := authtest.EdDSAIssuer(t, "k1") // Same kid, another key.
	forged, _ := other.Issue("ada", "", auth.Docs{Read: []string{"*"}}, time.Minute)
	bad := map[string]struct{ token, code string }{
		"missing":   {"", "unauthenticated"},
		"garbage":   {"not-a-jwt", "unauthenticated"},
		"alg none":  {authtest.NoneToken(map[string]any{"sub": "ada", "exp": time.Now().Add(time.Hour).Unix(), "docs": map[string]any{"read": []string{"*"}}}), "unauthenticated"},
		"tampered":  {authtest.Tamper(good, map[string]any{"docs": map[string]any{"read": []string{"*"}}}), "unauthenticated"},
		"wrong key": {forged, "unauthenticated"},
		"expired":   {expired, "auth_expired"},
	}
	for name, b := range bad {
		var first []byte
		for _, doc := range []string{"secret", "nosuchdoc"} {
			for _, p := range docPaths(doc, a.lasts["secret"]) {
				r := a.get(t, p, b.token)
				if r.status != 401 || r.errorCode(t) != b.code || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("%s token, GET %s: %d %s, want 401 %s with WWW-Authenticate", name, p, r.status, r.body, b.code)
				}
				if first == nil {
					first = r.body
				} else if string(r.body) != string(first) {
					t.Fatalf("%s token: GET %s answers %q, another path %q: the answer must not depend on the document", name, p, r.body, first)
				}
			}
		}
	}
	// A token in the URL is refused, whatever else the request carries.
	if r := a.get(t, "/v1/documents/open?access_token="+url.QueryEscape(good), good); r.status != 401 {
		t.Fatalf("token in URL: %d %s", r.status, r.body)
	}
	// A valid token without a read claim on an existing document: 404,
	// identical to a document it may read that does not exist.
	good = a.token(t, auth.Docs{Read: []string{"open", "nosuch*"}})
	for i, p := range docPaths("secret", a.lasts["secret"]) {
		exists := a.get(t, p, good)
		missing := a.get(t, docPaths("nosuchdoc", a.lasts["secret"])[i], good)
		if exists.status != 404 || exists.errorCode(t) != "unknown_document" {
			t.Fatalf("no read claim, GET %s: %d %s, want 404 unknown_document", p, exists.status, exists.body)
		}
		ex := strings.ReplaceAll(string(exists.body), "secret", "nosuchdoc")
		if missing.status != 404 || ex != string(missing.body) || !slices.Equal(headerNames(exists.header), headerNames(missing.header)) {
			t.Fatalf("no read claim: existing document answers %d %q, missing one %d %q", exists.status, exists.body, missing.status, missing.body)
		}
	}
	// A write claim implies read; the read claim reads.
	writer := a.token(t, auth.Docs{Write: []string{"sec*"}})
	for _, p := range docPaths("secret", a.lasts["secret"])[:2] {
		if r := a.get(t, p, writer); r.status != 200 {
			t.Fatalf("write claim, GET %s: %d %s", p, r.status, r.body)
		}
	}
	if r := a.get(t, "/v1/documents/open", good); r.status != 200 {
		t.Fatalf("read claim: %d %s", r.status, r.body)
	}
}

// TestDocumentRoutes: the answers' shapes, ETag and If-None-Match, and
// the errors of bad requests.
func TestDocumentRoutes(t *testing.T) {
	a := newAPI(t)
	tok := a.token(t, auth.Docs{Read: []string{"*"}})
	last := a.lasts["open"]
	r := a.get(t, "/v1/documents/open", tok)
	var d Document
	if err := json.Unmarshal(r.body, &d); err != nil || r.status != 200 || d.Version != last || d.ID != "open" || d.Author == "" || d.Updated.IsZero() {
		t.Fatalf("GET current: %d %s (%v)", r.status, r.body, err)
	}
	if etag := r.header.Get("ETag"); etag != `"`+strconv.FormatUint(last, 10)+`"` || r.header.Get("X-Palimpsest-Source") != SourceLog {
		t.Fatalf("ETag %q, source %q", etag, r.header.Get("X-Palimpsest-Source"))
	}
	if r := a.get(t, "/v1/documents/open", tok, "If-None-Match", `"1", "`+strconv.FormatUint(last, 10)+`"`); r.status != 304 || len(r.body) != 0 {
		t.Fatalf("If-None-Match of the version: %d %q, want 304", r.status, r.body)
	}
	if r := a.get(t, "/v1/documents/open", tok, "If-None-Match", `"1"`); r.status != 200 {
		t.Fatalf("If-None-Match of another version: %d", r.status)
	}
	// at= a version, and at= the version's time.
	r = a.get(t, "/v1/documents/open?at="+strconv.FormatUint(last, 10), tok)
	var at Document
	if err := json.Unmarshal(r.body, &at); err != nil || r.status != 200 || at.Text != d.Text || at.Version != last {
		t.Fatalf("GET at=%d: %d %s", last, r.status, r.body)
	}
	r = a.get(t, "/v1/documents/open?at="+url.QueryEscape(d.Updated.Add(time.Microsecond).Format(time.RFC3339Nano)), tok)
	if err := json.Unmarshal(r.body, &at); err != nil || r.status != 200 || at.Version != last {
		t.Fatalf("GET at=<time of %d>: %d %s", last, r.status, r.body)
	}
	for path, want := range map[string]struct {
		status int
		code   string
	}{
		"/v1/documents/open?at=" + strconv.FormatUint(a.lasts["secret"], 10): {404, "unknown_version"},
		"/v1/documents/open?at=2001-01-01T00:00:00Z":                         {404, "unknown_version"},
		"/v1/documents/open?at=yesterday":                                    {400, "bad_query"},
		"/v1/documents/open?at=":                                             {400, "bad_query"},
		"/v1/documents/open?version=3":                                       {400, "bad_query"},
		"/v1/documents/open?at=1&at=2":                                       {400, "bad_query"},
		"/v1/documents/bad.id":                                               {400, "bad_document_id"},
		"/v1/documents/open/history?limit=0":                                 {400, "bad_query"},
		"/v1/documents/open/history?cursor=xyz":                              {400, "bad_query"},
		"/v1/documents/open/history?since=monday":                            {400, "bad_query"},
		"/v1/documents/open/diff":                                            {400, "bad_query"},
		"/v1/documents/open/blame?granularity=line":                          {400, "bad_query"},
		"/v1/nothing": {404, "not_found"},
	} {
		r := a.get(t, path, tok)
		if r.status != want.status || r.errorCode(t) != want.code {
			t.Fatalf("GET %s: %d %s, want %d %s", path, r.status, r.body, want.status, want.code)
		}
	}
	req, _ := http.NewRequest("POST", a.srv.URL+"/v1/documents/open", strings.NewReader("{}"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 405 || !strings.Contains(string(body), "method_not_allowed") {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	// History, diff and blame answer their shapes.
	var hp HistoryPage
	if r := a.get(t, "/v1/documents/open/history?limit=3", tok); json.Unmarshal(r.body, &hp) != nil || len(hp.Versions) != 3 || hp.NextCursor == "" {
		t.Fatalf("history: %d %s", r.status, r.body)
	}
	var df Diff
	if r := a.get(t, "/v1/documents/open/diff?from=0", tok); json.Unmarshal(r.body, &df) != nil || df.To != last || applyDiff("", df.Changes) != d.Text {
		t.Fatalf("diff: %d %s", r.status, r.body)
	}
	var bl Blame
	if r := a.get(t, "/v1/documents/open/blame", tok); json.Unmarshal(r.body, &bl) != nil || bl.Version != last || len(bl.Runs) == 0 || bl.Runs[0].Author == "" {
		t.Fatalf("blame: %d %s", r.status, r.body)
	}
}

// TestOpenAPIListsEveryRoute: /openapi.json is valid JSON, an OpenAPI 3.1
// document whose paths, methods and query parameters are exactly the
// routes served, and whose every $ref resolves.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	a := newAPI(t)
	r := a.get(t, "/openapi.json", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", r.status, r.header.Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("/openapi.json is not JSON: %v", err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v, want 3.1.0", doc["openapi"])
	}
	paths, _ := doc["paths"].(map[string]any)
	var served, listed []string
	for _, rt := range Routes {
		served = append(served, rt.Method+" "+rt.Path)
		item, _ := paths[rt.Path].(map[string]any)
		op, _ := item[strings.ToLower(rt.Method)].(map[string]any)
		if op == nil {
			t.Fatalf("%s %s is served but not in the OpenAPI document", rt.Method, rt.Path)
		}
		if _, ok := op["responses"].(map[string]any)["200"]; !ok {
			t.Fatalf("%s %s: no 200 response", rt.Method, rt.Path)
		}
		var params []string
		ps, _ := op["parameters"].([]any)
		for _, p := range ps {
			pm := resolveRef(t, doc, p)
			if pm["in"] == "query" {
				params = append(params, pm["name"].(string))
			}
		}
		if params == nil {
			params = []string{}
		}
		want := append([]string{}, rt.Params...)
		slices.Sort(params)
		slices.Sort(want)
		if !slices.Equal(params, want) {
			t.Fatalf("%s %s: OpenAPI query parameters %v, served %v", rt.Method, rt.Path, params, want)
		}
	}
	for p, item := range paths {
		for m := range item.(map[string]any) {
			listed = append(listed, strings.ToUpper(m)+" "+p)
		}
	}
	slices.Sort(served)
	slices.Sort(listed)
	if !slices.Equal(served, listed) {
		t.Fatalf("OpenAPI lists %v, the API serves %v", listed, served)
	}
	walkRefs(t, doc, doc)
	// Every error code the document names exists.
	codes := resolveRef(t, doc, map[string]any{"$ref": "#/components/schemas/Error"})["properties"].(map[string]any)["error"].(map[string]any)["properties"].(map[string]any)["code"].(map[string]any)["enum"].([]any)
	known := map[string]bool{}
	for c := schemas.Code(1000); c < 5000; c++ {
		if s := c.String(); !strings.HasPrefix(s, "code_") {
			known[s] = true
		}
	}
	for _, c := range codes {
		if !known[c.(string)] {
			t.Fatalf("OpenAPI names error code %q, not in schemas/errors.json", c)
		}
	}
}

func headerNames(h http.Header) []string {
	var ks []string
	for k := range h {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func resolveRef(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		cm, _ := cur.(map[string]any)
		if cur = cm[part]; cur == nil {
			t.Fatalf("$ref %s does not resolve", ref)
		}
	}
	return resolveRef(t, doc, cur)
}

func walkRefs(t *testing.T, doc map[string]any, v any) {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["$ref"]; ok {
			resolveRef(t, doc, x)
		}
		for _, y := range x {
			walkRefs(t, doc, y)
		}
	case []any:
		for _, y := range x {
			walkRefs(t, doc, y)
		}
	}
}

// countingVerifier counts the signature checks.
type countingVerifier struct {
	v     TokenVerifier
	calls int
}

func (c *countingVerifier) Verify(ctx context.Context, token string) (*auth.Principal, error) {
	c.calls++
	return c.v.Verify(ctx, token)
}

// TestVerifiedTokenCache: a token that verified is not checked again within
// the TTL, never past its expiry; failures are never cached.
func TestVerifiedTokenCache(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	iss := authtest.EdDSAIssuer(t, "k1")
	clock := authtest.NewClock(time.Now())
	v, err := auth.NewVerifier(ctx, auth.Config{Keys: []auth.Key{authtest.VerifierKey(t, iss)}, Now: clock.Now, Leeway: -1})
	if err != nil {
		t.Fatal(err)
	}
	cv := &countingVerifier{v: v}
	c := newVerifyCache(cv, 30*time.Second, 100, clock.Now)
	iss.Now = clock.Now
	tok, _ := iss.Issue("ada", "", auth.Docs{Read: []string{"*"}}, time.Minute)
	for range 3 {
		if _, err := c.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if cv.calls != 1 {
		t.Fatalf("%d signature checks for 3 uses within the TTL, want 1", cv.calls)
	}
	clock.Advance(31 * time.Second)
	if _, err := c.Verify(ctx, tok); err != nil || cv.calls != 2 {
		t.Fatalf("after the TTL: %v, %d checks, want a second check", err, cv.calls)
	}
	clock.Advance(30 * time.Second) // Past exp, within the TTL of the second check.
	if _, err := c.Verify(ctx, tok); err == nil {
		t.Fatal("an expired token was accepted from the cache")
	}
	bad := authtest.Tamper(tok, map[string]any{"sub": "eve"})
	for range 2 {
		if _, err := c.Verify(ctx, bad); err == nil {
			t.Fatal("a tampered token verified")
		}
	}
	if cv.calls != 5 {
		t.Fatalf("%d checks, want 5: failures are checked every time", cv.calls)
	}
}
