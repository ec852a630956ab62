package read

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
	"github.com/palimpsest-editor/palimpsest/services/auth"
)

// TokenVerifier checks a token; *auth.Verifier is one.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*auth.Principal, error)
}

// HTTPConfig configures the HTTP face of a Service.
type HTTPConfig struct {
	// Verifier checks tokens: the same JWTs and per-document read claims as
	// the gateway (an *auth.Verifier). Required.
	Verifier TokenVerifier
	// Tokens reads a request's token: the HttpOnly cookie or an
	// Authorization: Bearer header, never the URL.
	Tokens auth.TokenSource
	// VerifiedTTL is how long a token that verified is taken without
	// checking its signature again (never past its exp): default 30 s,
	// negative never. It bounds how long the tokens of a key removed from
	// the trusted set stay accepted.
	VerifiedTTL time.Duration
	// Now is the clock of VerifiedTTL (default time.Now).
	Now func() time.Time
}

// Route is one route of the API, as the OpenAPI document lists it.
type Route struct {
	Method string // GET
	Path   string // OpenAPI path template, like /v1/documents/{id}
	Name   string // for metrics
	Auth   bool   // needs a token
	Params []string
}

// Routes are the API's routes. Every one is in schemas/openapi.json.
var Routes = []Route{
	{Method: "GET", Path: "/v1/documents/{id}", Name: "document", Auth: true, Params: []string{"at"}},
	{Method: "GET", Path: "/v1/documents/{id}/history", Name: "history", Auth: true, Params: []string{"since", "until", "author", "limit", "cursor"}},
	{Method: "GET", Path: "/v1/documents/{id}/diff", Name: "diff", Auth: true, Params: []string{"from", "to"}},
	{Method: "GET", Path: "/v1/documents/{id}/blame", Name: "blame", Auth: true, Params: []string{"at", "granularity"}},
	{Method: "GET", Path: "/openapi.json", Name: "openapi"},
}

// handler serves the API. Every answer has Cache-Control: no-store and a
// JSON body; errors are {"error":{"code","message"}} with a stable code
// from schemas/errors.json.
//
// Authorization never reveals whether a document exists. In order:
//  1. no token, or a token that does not verify: 401, before anything else
//     is looked at (whatever the path);
//  2. a document id that is not one: 400 bad_document_id (syntax only);
//  3. a valid token without a read (or write) claim for the document: 404
//     unknown_document, the very same answer as a document that does not
//     exist, before any lookup;
//  4. only then are parameters checked and stores read.
type handler struct {
	s      *Service
	v      TokenVerifier
	tokens auth.TokenSource
	mux    *http.ServeMux
}

// Handler returns the HTTP API: the routes in Routes.
func (s *Service) Handler(hc HTTPConfig) (http.Handler, error) {
	if hc.Verifier == nil {
		return nil, errors.New("read: HTTPConfig.Verifier is required")
	}
	if hc.VerifiedTTL == 0 {
		hc.VerifiedTTL = 30 * time.Second
	}
	if hc.Now == nil {
		hc.Now = time.Now
	}
	h := &handler{s: s, v: newVerifyCache(hc.Verifier, hc.VerifiedTTL, 10000, hc.Now), tokens: hc.Tokens, mux: http.NewServeMux()}
	docRoutes := map[string]func(http.ResponseWriter, *http.Request, string) error{
		"document": h.document, "history": h.history, "diff": h.diff, "blame": h.blame,
	}
	for _, rt := range Routes {
		rt := rt
		var fn func(http.ResponseWriter, *http.Request) error
		if f, ok := docRoutes[rt.Name]; ok {
			fn = h.authorized(rt, f)
		} else {
			fn = h.openapi
		}
		h.mux.Handle(rt.Path, h.instrument(rt, fn))
	}
	h.mux.Handle("/", h.instrument(Route{Name: "unknown"}, func(w http.ResponseWriter, r *http.Request) error {
		return schemas.Errorf(schemas.CodeNotFound, nil, "no route %s", truncate(r.URL.Path, 128))
	}))
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// statusWriter remembers the status for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// instrument checks the method, answers errors in the one shape and
// records the metrics.
func (h *handler) instrument(rt Route, fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		sw.Header().Set("Cache-Control", "no-store")
		var err error
		if rt.Method != "" && r.Method != rt.Method && !(rt.Method == http.MethodGet && r.Method == http.MethodHead) {
			sw.Header().Set("Allow", rt.Method+", HEAD")
			err = schemas.Errorf(schemas.CodeMethodNotAllowed, nil, "%s does not accept %s", rt.Path, truncate(r.Method, 16))
		} else {
			err = fn(sw, r)
		}
		if err != nil {
			h.writeError(sw, r, err)
		}
		h.s.metrics.requests.WithLabelValues(rt.Name, strconv.Itoa(sw.status)).Inc()
		h.s.metrics.requestSeconds.WithLabelValues(rt.Name).Observe(time.Since(start).Seconds())
	})
}

// authorized runs steps 1-3 of the handler's order, then fn.
func (h *handler) authorized(rt Route, fn func(http.ResponseWriter, *http.Request, string) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		tok, err := h.tokens.FromRequest(r)
		if err != nil {
			return err
		}
		p, err := h.v.Verify(r.Context(), tok)
		if err != nil {
			return err
		}
		doc := r.PathValue("id")
		if err := eventlog.ValidateDocID(doc); err != nil {
			return err
		}
		if !p.CanRead(doc) {
			return notFound(doc)
		}
		if err := onlyParams(r, rt.Params); err != nil {
			return err
		}
		return fn(w, r, doc)
	}
}

// onlyParams refuses query parameters the route does not know, and repeated
// ones: a typo must not silently give another answer.
func onlyParams(r *http.Request, known []string) error {
	for name, vals := range r.URL.Query() {
		if !contains(known, name) {
			return schemas.Errorf(schemas.CodeBadQuery, nil, "unknown query parameter %q (this route takes %s)", truncate(name, 32), strings.Join(known, ", "))
		}
		if len(vals) > 1 {
			return schemas.Errorf(schemas.CodeBadQuery, nil, "query parameter %q is repeated", name)
		}
	}
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// apiError is the one error shape.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError answers err: its schemas code and message, an auth error as
// 401 (auth_expired for an expired token), anything else as a 500 whose
// details go to the log only.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := schemas.CodeOf(err)
	msg := ""
	var se *schemas.Error
	if errors.As(err, &se) {
		msg = se.Msg
		if msg == "" {
			msg = se.Code.Description()
		}
	}
	var ae *auth.Error
	switch {
	case errors.As(err, &ae):
		msg = ae.Error()
		switch ae.Code {
		case auth.CodeExpired:
			code, msg = schemas.CodeAuthExpired, "the token has expired; get a fresh one" // Not the verifier's clock.
		case auth.CodeBadConfig:
			code, msg = schemas.CodeUnavailable, "the token's keys cannot be fetched now"
			h.s.log.Error("read: token verification is misconfigured or its keys are unreachable", "err", err)
		default:
			code = schemas.CodeUnauthenticated
		}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		code, msg = schemas.CodeUnavailable, "the request was cancelled or timed out"
	case code == 0:
		code, msg = schemas.CodeInternal, "internal error"
		h.s.log.Error("read: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case code == schemas.CodeUnknownDocument:
		msg = notFound(r.PathValue("id")).(*schemas.Error).Msg // One message, whatever the cause.
	}
	switch code {
	case schemas.CodeUnauthenticated, schemas.CodeAuthExpired:
		w.Header().Set("WWW-Authenticate", `Bearer realm="palimpsest"`)
	case schemas.CodeUnavailable:
		w.Header().Set("Retry-After", "1")
		if errors.As(err, &se) && se.Code == schemas.CodeUnavailable {
			h.s.log.Warn("read: dependency unavailable", "path", r.URL.Path, "err", err)
		}
	}
	var body apiError
	body.Error.Code, body.Error.Message = code.String(), msg
	writeJSON(w, code.HTTPStatus(), body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func (h *handler) openapi(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(schemas.OpenAPI)
	return err
}
