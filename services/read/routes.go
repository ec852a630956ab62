package read

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/palimpsest-editor/palimpsest/schemas"
)

// parseVersionOrTime reads a query value that is either a version (a
// sequence, decimal) or an RFC 3339 instant.
func parseVersionOrTime(name, s string) (v uint64, t time.Time, isTime bool, err error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		v, perr := strconv.ParseUint(s, 10, 64)
		if perr == nil {
			return v, time.Time{}, false, nil
		}
	} else if t, perr := time.Parse(time.RFC3339Nano, s); perr == nil {
		return 0, t, true, nil
	}
	return 0, time.Time{}, false, schemas.Errorf(schemas.CodeBadQuery, nil,
		"%s=%q is neither a version (a sequence number) nor an RFC 3339 time like 2026-01-02T15:04:05Z", name, truncate(s, 64))
}

// resolve turns a version-or-time query value into a version of doc.
func (h *handler) resolve(r *http.Request, doc, name string) (uint64, error) {
	return h.s.Resolve(r.Context(), doc, name, r.URL.Query().Get(name))
}

// Resolve reads value, named name in errors, as a version of doc: a
// sequence (decimal, returned as is) or an RFC 3339 instant (the last
// version stored at or before it).
func (s *Service) Resolve(ctx context.Context, doc, name, value string) (uint64, error) {
	v, t, isTime, err := parseVersionOrTime(name, value)
	if err != nil || !isTime {
		return v, err
	}
	return s.versionAt(ctx, doc, t)
}

// etagMatches reports whether If-None-Match names the version's ETag.
func etagMatches(r *http.Request, etag string) bool {
	inm := r.Header.Get("If-None-Match")
	if inm == "" {
		return false
	}
	for _, tag := range strings.Split(inm, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}

// document: GET /v1/documents/{id}[?at=version|time].
func (h *handler) document(w http.ResponseWriter, r *http.Request, doc string) error {
	var d Document
	var err error
	if r.URL.Query().Has("at") {
		v, t, isTime, perr := parseVersionOrTime("at", r.URL.Query().Get("at"))
		switch {
		case perr != nil:
			return perr
		case isTime:
			d, err = h.s.AtTime(r.Context(), doc, t)
		default:
			d, err = h.s.At(r.Context(), doc, v)
		}
	} else {
		d, err = h.s.Current(r.Context(), doc)
	}
	if err != nil {
		return err
	}
	etag := `"` + strconv.FormatUint(d.Version, 10) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("X-Palimpsest-Source", d.Source)
	if etagMatches(r, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(h.s.bodies.body(&d))
	return err
}

// history: GET /v1/documents/{id}/history.
func (h *handler) history(w http.ResponseWriter, r *http.Request, doc string) error {
	q := r.URL.Query()
	var hq HistoryQuery
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &hq.Since}, {"until", &hq.Until}} {
		if s := q.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return schemas.Errorf(schemas.CodeBadQuery, nil, "%s=%q is not an RFC 3339 time like 2026-01-02T15:04:05Z", p.name, truncate(s, 64))
			}
			*p.t = t
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxHistoryLimit {
			return schemas.Errorf(schemas.CodeBadQuery, nil, "limit=%q: want a number in 1..%d", truncate(s, 16), MaxHistoryLimit)
		}
		hq.Limit = n
	}
	hq.Author, hq.Cursor = q.Get("author"), q.Get("cursor")
	page, err := h.s.History(r.Context(), doc, hq)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// diff: GET /v1/documents/{id}/diff?from=&to=.
func (h *handler) diff(w http.ResponseWriter, r *http.Request, doc string) error {
	if !r.URL.Query().Has("from") {
		return schemas.Errorf(schemas.CodeBadQuery, nil, "from is required: a version, an RFC 3339 time, or 0 for the empty document")
	}
	from, err := h.resolve(r, doc, "from")
	if err != nil {
		return err
	}
	var to uint64
	if r.URL.Query().Has("to") {
		if to, err = h.resolve(r, doc, "to"); err != nil {
			return err
		}
	} else if to, err = h.s.Latest(r.Context(), doc); err != nil {
		return err
	}
	d, err := h.s.Diff(r.Context(), doc, from, to)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// blame: GET /v1/documents/{id}/blame[?at=&granularity=].
func (h *handler) blame(w http.ResponseWriter, r *http.Request, doc string) error {
	var v uint64
	if r.URL.Query().Has("at") {
		var err error
		if v, err = h.resolve(r, doc, "at"); err != nil {
			return err
		}
		if v == 0 {
			return schemas.Errorf(schemas.CodeUnknownVersion, nil, "version 0 is before document %q's first event", doc)
		}
	}
	b, err := h.s.Blame(r.Context(), doc, v, r.URL.Query().Get("granularity"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}
