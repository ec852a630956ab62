// Package web serves Palimpsest's browser editor: the built page of web/dist
// (TypeScript + CodeMirror 6, and the CRDT compiled to WebAssembly from the
// same Go code the server runs), embedded in the binary, and the small
// session endpoint that turns a pasted dev token into an HttpOnly cookie.
//
//	mux.Handle("/", web.Handler())
//	mux.Handle("/v1/session", web.SessionHandler(verify))
//
// Build the page with `npm run build` in web/ (one command: vite, the
// GOOS=js GOARCH=wasm build and the manifest); dist is committed, so `go
// build` alone serves the editor. TestDistFresh fails when dist is older than
// its sources.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed dist
var dist embed.FS

// Dist returns the built editor's files, rooted at dist/.
func Dist() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err)
	}
	return sub
}

// Handler serves the editor: "/" and any path that names no file get
// index.html (the page routes with the URL's fragment), other paths their file
// from dist. Hashed assets (/assets/*) are cached for a year; everything else
// is revalidated with an ETag. Text, JavaScript and WebAssembly are sent gzip
// compressed to clients that accept it. Every response carries a Content
// Security Policy that allows only this origin's scripts, WebAssembly and
// WebSocket.
func Handler() http.Handler {
	h := &handler{files: Dist(), cache: map[string]*asset{}}
	go h.warm()
	return h
}

// warm loads and compresses every file ahead of the first request.
func (h *handler) warm() {
	_ = fs.WalkDir(h.files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			h.load(p)
		}
		return nil
	})
}

type handler struct {
	files fs.FS
	mu    sync.Mutex
	cache map[string]*asset
}

// asset is a file as served: its bytes, gzip form (when smaller) and ETag.
type asset struct {
	name  string
	body  []byte
	gz    []byte
	etag  string
	ctype string
}

func (h *handler) load(name string) *asset {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.cache[name]; ok {
		return a
	}
	b, err := fs.ReadFile(h.files, name)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(b)
	a := &asset{name: name, body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	a.ctype = mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".wasm":
		a.ctype = "application/wasm"
	case ".js", ".mjs":
		a.ctype = "text/javascript; charset=utf-8"
	case ".html":
		a.ctype = "text/html; charset=utf-8"
	case ".json":
		a.ctype = "application/json"
	}
	if a.ctype == "" {
		a.ctype = "application/octet-stream"
	}
	if compressible(a.ctype) && len(b) > 512 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		if buf.Len() < len(b) {
			a.gz = buf.Bytes()
		}
	}
	h.cache[name] = a
	return a
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.HasPrefix(ctype, "application/wasm") ||
		strings.HasPrefix(ctype, "application/json") || strings.HasPrefix(ctype, "image/svg")
}

// csp allows this origin's scripts, WebAssembly ('wasm-unsafe-eval'),
// WebSocket and fetches, and CodeMirror's injected styles.
const csp = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; " +
	"connect-src 'self'; img-src 'self' data:; worker-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	var a *asset
	if name != "" {
		a = h.load(name)
	}
	if a == nil {
		if path.Ext(name) != "" {
			http.NotFound(w, r)
			return
		}
		a = h.load("index.html")
		if a == nil {
			http.Error(w, "the editor was not built (run npm run build in web/)", http.StatusNotFound)
			return
		}
	}
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Vary", "Accept-Encoding")
	if strings.HasPrefix(a.name, "assets/") {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	if a.name == "sw.js" {
		hd.Set("Service-Worker-Allowed", "/")
	}
	body, etag := a.body, a.etag
	if a.gz != nil && acceptsGzip(r) {
		hd.Set("Content-Encoding", "gzip")
		body, etag = a.gz, strings.TrimSuffix(a.etag, `"`)+`-gz"`
	}
	hd.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, p := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(p), ";")
		q = strings.ReplaceAll(q, " ", "")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000" {
			return true
		}
	}
	return false
}
