package auth

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// remoteJWKS holds the keys published at a JWKS URL and refreshes them: on
// a timer, on demand (Verifier.Refresh), and when a token names a kid it
// does not know, at most once per minGap.
//
// A failed fetch never drops keys: the previous set stays in force until a
// fetch succeeds with at least one usable key. A successful fetch replaces
// the whole set, so a key removed at the source stops verifying after the
// next refresh.
type remoteJWKS struct {
	url     string
	client  *http.Client
	timeout time.Duration
	minGap  time.Duration
	now     func() time.Time
	log     *slog.Logger

	keys atomic.Pointer[[]verKey] // replaced, never mutated

	mu        sync.Mutex // serializes fetches; guards lastFetch
	lastFetch time.Time  // start of the last attempt, successful or not
}

// checkJWKSURL accepts an absolute https URL, or http when allowHTTP is set
// or the host is a loopback address or "localhost".
func checkJWKSURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP && !isLoopback(u.Hostname()) {
			return fmt.Errorf("%q is plain http to a non-loopback host; use https (or set AllowHTTPJWKS)", raw)
		}
	default:
		return fmt.Errorf("%q: scheme must be https", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// current returns the key set in force (nil before the first success).
func (r *remoteJWKS) current() *[]verKey { return r.keys.Load() }

// refresh fetches the set now, whatever the time since the last fetch.
func (r *remoteJWKS) refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetchLocked(ctx)
}

// refreshForUnknown is called when no key fits a token; seen is the set the
// caller searched. It reports whether the set in force may now hold more
// keys than seen: true when another fetch replaced the set meanwhile, or
// when this call fetched successfully. It fetches only when the last attempt
// started at least minGap ago, so unknown kids cannot make the verifier
// hammer the key server.
func (r *remoteJWKS) refreshForUnknown(ctx context.Context, seen *[]verKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys.Load() != seen {
		return true
	}
	if !r.lastFetch.IsZero() && r.now().Sub(r.lastFetch) < r.minGap {
		return false
	}
	if err := r.fetchLocked(ctx); err != nil {
		r.log.Warn("auth: JWKS refresh for an unknown key failed", "url", r.url, "error", err)
		return false
	}
	return true
}

func (r *remoteJWKS) fetchLocked(ctx context.Context) error {
	r.lastFetch = r.now()
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return errorf(CodeBadConfig, err, "JWKS URL %q", r.url)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return errorf(CodeBadConfig, err, "fetching JWKS from %q", r.url)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errorf(CodeBadConfig, nil, "fetching JWKS from %q: status %s", r.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return errorf(CodeBadConfig, err, "reading JWKS from %q", r.url)
	}
	if len(body) > maxJWKSBytes {
		return errorf(CodeBadConfig, nil, "JWKS from %q is larger than %d bytes", r.url, maxJWKSBytes)
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return errorf(CodeBadConfig, err, "JWKS from %q", r.url)
	}
	for _, s := range skipped {
		r.log.Warn("auth: JWKS key skipped", "url", r.url, "reason", s)
	}
	if len(keys) == 0 {
		return errorf(CodeBadConfig, nil, "JWKS from %q has no usable key (%d skipped)", r.url, len(skipped))
	}
	r.keys.Store(&keys)
	return nil
}

// run refreshes on every tick until ctx ends; after, when set, sees each
// outcome (a test seam).
func (r *remoteJWKS) run(ctx context.Context, tick <-chan time.Time, after func(error)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			err := r.refresh(ctx)
			if err != nil {
				r.log.Warn("auth: periodic JWKS refresh failed; keeping the previous keys", "url", r.url, "error", err)
			}
			if after != nil {
				after(err)
			}
		}
	}
}
