package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults and limits of Config.
const (
	DefaultLeeway            = 30 * time.Second
	MaxLeeway                = 5 * time.Minute
	DefaultJWKSRefresh       = 10 * time.Minute
	DefaultJWKSMinRefreshGap = time.Minute
	DefaultJWKSTimeout       = 10 * time.Second
	// MinHS256SecretBytes is the shortest DevHS256Secret accepted.
	MinHS256SecretBytes = 32
	// MaxTokenBytes bounds a token; a longer one is CodeMalformed before any
	// decoding.
	MaxTokenBytes = 8 << 10
	// MaxSubjectBytes bounds sub and name (sub becomes the author of ops,
	// which the event schema caps at 256 bytes).
	MaxSubjectBytes = 256
)

// Config says which keys a Verifier trusts and which claims it demands. The
// zero value of every field but the key sources works; at least one key
// source (Keys, PublicKeyFile, JWKSFile, JWKSURL or DevHS256Secret) must be
// set. Keys from all sources are used together.
type Config struct {
	// Keys are verification keys given in code (the dev key, tests).
	Keys []Key
	// PublicKeyFile is a PEM file of one or more public keys (PKIX "PUBLIC
	// KEY", PKCS #1 "RSA PUBLIC KEY" or "CERTIFICATE"); its keys have no
	// kid. Read once, by NewVerifier.
	PublicKeyFile string
	// JWKSFile is a JWK Set file, read once by NewVerifier. Keys it cannot
	// use are skipped (and logged); a file without a usable key is an error.
	JWKSFile string
	// JWKSURL is a JWK Set URL (https, or http to a loopback host unless
	// AllowHTTPJWKS). NewVerifier fetches it and fails if that fails; it is
	// then re-fetched every JWKSRefresh, on Refresh, and when a token names
	// an unknown kid but at most once per JWKSMinRefreshGap. A failed fetch
	// keeps the previous keys.
	JWKSURL           string
	JWKSRefresh       time.Duration // 0: DefaultJWKSRefresh
	JWKSMinRefreshGap time.Duration // 0: DefaultJWKSMinRefreshGap
	JWKSTimeout       time.Duration // per fetch; 0: DefaultJWKSTimeout
	HTTPClient        *http.Client  // nil: a plain client
	AllowHTTPJWKS     bool

	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be one of the token's aud values.
	Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat: 0 means
	// DefaultLeeway, a negative value none; more than MaxLeeway is an error.
	Leeway time.Duration

	// DevHS256Secret, when set, is the explicit development opt-in to HS256:
	// HS256 tokens are then accepted if signed with this secret, and only
	// with it (never with a public key's bytes). Unset, every HS256 token is
	// CodeAlgNotAllowed. Never set it in production.
	DevHS256Secret []byte

	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives key-refresh problems; nil means slog.Default(). No
	// token is ever logged.
	Logger *slog.Logger
}

// Verifier checks tokens. It is safe for concurrent use. When it has a
// JWKSURL it runs one refresh goroutine, which ends when the context given
// to NewVerifier ends or Close is called.
type Verifier struct {
	static   []verKey
	remote   *remoteJWKS
	hmac     []byte
	allowed  []string
	issuer   string
	audience string
	leeway   time.Duration
	now      func() time.Time
	parser   *jwt.Parser

	stop     context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// hooks are test seams for the refresh loop.
type hooks struct {
	ticker       func(time.Duration) (<-chan time.Time, func())
	afterRefresh func(error)
}

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// NewVerifier loads the configured keys (reading files and fetching the
// JWKS URL with ctx) and returns a Verifier, or an *Error with CodeBadConfig
// that says which source failed.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	return newVerifier(ctx, cfg, hooks{ticker: realTicker})
}

func newVerifier(ctx context.Context, cfg Config, h hooks) (*Verifier, error) {
	bad := func(err error, format string, args ...any) (*Verifier, error) {
		return nil, errorf(CodeBadConfig, err, format, args...)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	v := &Verifier{
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		now:      cfg.Now,
		allowed:  []string{AlgEdDSA, AlgRS256},
	}
	if v.now == nil {
		v.now = time.Now
	}
	switch {
	case cfg.Leeway == 0:
		v.leeway = DefaultLeeway
	case cfg.Leeway < 0:
		v.leeway = 0
	case cfg.Leeway > MaxLeeway:
		return bad(nil, "leeway %v is more than %v", cfg.Leeway, MaxLeeway)
	default:
		v.leeway = cfg.Leeway
	}
	if cfg.DevHS256Secret != nil {
		if len(cfg.DevHS256Secret) < MinHS256SecretBytes {
			return bad(nil, "DevHS256Secret has %d bytes, fewer than %d", len(cfg.DevHS256Secret), MinHS256SecretBytes)
		}
		v.hmac = slices.Clone(cfg.DevHS256Secret)
		v.allowed = append(v.allowed, AlgHS256)
		log.Warn("auth: HS256 tokens are accepted (development option DevHS256Secret is set)")
	}

	for _, k := range cfg.Keys {
		vk, err := checkKey(k)
		if err != nil {
			return bad(err, "Config.Keys")
		}
		v.static = append(v.static, vk)
	}
	if cfg.PublicKeyFile != "" {
		data, err := os.ReadFile(cfg.PublicKeyFile)
		if err != nil {
			return bad(err, "public key file")
		}
		keys, err := parsePublicKeysPEM(data)
		if err != nil {
			return bad(err, "public key file %q", cfg.PublicKeyFile)
		}
		v.static = append(v.static, keys...)
	}
	if cfg.JWKSFile != "" {
		data, err := os.ReadFile(cfg.JWKSFile)
		if err != nil {
			return bad(err, "JWKS file")
		}
		if len(data) > maxJWKSBytes {
			return bad(nil, "JWKS file %q is larger than %d bytes", cfg.JWKSFile, maxJWKSBytes)
		}
		keys, skipped, err := parseJWKS(data)
		if err != nil {
			return bad(err, "JWKS file %q", cfg.JWKSFile)
		}
		for _, s := range skipped {
			log.Warn("auth: JWKS key skipped", "file", cfg.JWKSFile, "reason", s)
		}
		if len(keys) == 0 {
			return bad(nil, "JWKS file %q has no usable key (%d skipped)", cfg.JWKSFile, len(skipped))
		}
		v.static = append(v.static, keys...)
	}
	if cfg.JWKSURL != "" {
		if err := checkJWKSURL(cfg.JWKSURL, cfg.AllowHTTPJWKS); err != nil {
			return bad(err, "JWKS URL")
		}
		r := &remoteJWKS{
			url:     cfg.JWKSURL,
			client:  cfg.HTTPClient,
			timeout: orDefault(cfg.JWKSTimeout, DefaultJWKSTimeout),
			minGap:  orDefault(cfg.JWKSMinRefreshGap, DefaultJWKSMinRefreshGap),
			now:     v.now,
			log:     log,
		}
		if r.client == nil {
			r.client = &http.Client{}
		}
		if err := r.refresh(ctx); err != nil {
			return nil, err
		}
		v.remote = r
	}
	if len(v.static) == 0 && v.remote == nil && v.hmac == nil {
		return bad(nil, "no key source: set Keys, PublicKeyFile, JWKSFile or JWKSURL")
	}

	v.parser = jwt.NewParser(
		jwt.WithValidMethods(v.allowed),
		jwt.WithStrictDecoding(),
		jwt.WithoutClaimsValidation(), // checkClaims does it, with typed codes
	)

	v.done = make(chan struct{})
	if v.remote == nil {
		v.stop = func() {}
		close(v.done)
		return v, nil
	}
	loopCtx, stop := context.WithCancel(ctx) // ends with ctx or Close
	v.stop = stop
	tick, stopTicker := h.ticker(orDefault(cfg.JWKSRefresh, DefaultJWKSRefresh))
	go func() {
		defer close(v.done)
		defer stopTicker()
		v.remote.run(loopCtx, tick, h.afterRefresh)
	}()
	return v, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Close stops the JWKS refresh goroutine, if any, and waits for it to end.
// Verify keeps working with the keys last fetched. Close is idempotent.
func (v *Verifier) Close() {
	v.stopOnce.Do(v.stop)
	<-v.done
}

// Refresh fetches the JWKS URL now, whatever the time since the last fetch;
// on failure the previous keys stay in force and the error says why. It
// does nothing without a JWKS URL.
func (v *Verifier) Refresh(ctx context.Context) error {
	if v.remote == nil {
		return nil
	}
	return v.remote.refresh(ctx)
}

// tokenClaims is what Verify reads from a token's payload.
type tokenClaims struct {
	jwt.RegisteredClaims
	Name string `json:"name,omitempty"`
	Docs *Docs  `json:"docs,omitempty"`
}

// Verify checks token and returns the Principal it proves, or an *Error:
//
//   - CodeMissingToken for an empty token;
//   - CodeMalformed when it is not a compact JWS of at most MaxTokenBytes
//     with canonical base64url, a JSON header and JSON claims of the right
//     types, when its header has "crit", or when sub, name or docs break
//     their limits;
//   - CodeAlgNotAllowed when alg is not EdDSA, RS256 or (with
//     DevHS256Secret) HS256;
//   - CodeUnknownKey when no key fits the kid and alg (EdDSA only uses
//     Ed25519 keys, RS256 only RSA keys, HS256 only DevHS256Secret; see Key
//     for kid matching);
//   - CodeBadSignature when the signature does not verify;
//   - CodeMissingClaim without exp or sub; CodeBadIssuer or CodeBadAudience
//     when Config demands them and the token differs; CodeNotYetValid when
//     nbf or iat is later than now plus the leeway; CodeExpired when now is
//     not before exp plus the leeway.
//
// When several checks fail, the first of these wins: size and structure,
// alg, key, signature, exp and sub present, claim shapes, iss, aud, nbf and
// iat, exp. Claims are decoded before the signature is checked but judged
// only after it has verified. ctx bounds a JWKS fetch triggered by an
// unknown kid.
func (v *Verifier) Verify(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, errorf(CodeMissingToken, nil, "no token")
	}
	if len(token) > MaxTokenBytes {
		return nil, errorf(CodeMalformed, nil, "token is %d bytes, more than %d", len(token), MaxTokenBytes)
	}
	hdr, err := v.checkHeader(token)
	if err != nil {
		return nil, err
	}
	claims := &tokenClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keyfunc(ctx, hdr)); err != nil {
		var e *Error
		switch {
		case errors.As(err, &e):
			return nil, e
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return nil, errorf(CodeBadSignature, nil, "the %s signature does not verify", hdr.alg)
		default:
			return nil, errorf(CodeMalformed, err, "token does not decode")
		}
	}
	return v.checkClaims(claims)
}

type header struct {
	alg    string
	kid    string
	hasKid bool
}

// checkHeader decodes the JOSE header and checks alg against the allow-list
// before anything else is decoded.
func (v *Verifier) checkHeader(token string) (header, error) {
	seg, _, ok := strings.Cut(token, ".")
	if !ok || strings.Count(token, ".") != 2 {
		return header{}, errorf(CodeMalformed, nil, "not a compact JWS (want three dot-separated parts)")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return header{}, errorf(CodeMalformed, err, "header is not base64url")
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return header{}, errorf(CodeMalformed, nil, "header is not a JSON object")
	}
	alg, ok := m["alg"].(string)
	if !ok {
		return header{}, errorf(CodeMalformed, nil, "header has no string alg")
	}
	if !slices.Contains(v.allowed, alg) {
		return header{}, errorf(CodeAlgNotAllowed, nil, "alg %q is not one of %v", truncate(alg, 32), v.allowed)
	}
	if _, ok := m["crit"]; ok {
		return header{}, errorf(CodeMalformed, nil, "header has crit; no extension is supported")
	}
	h := header{alg: alg}
	if k, present := m["kid"]; present {
		s, ok := k.(string)
		if !ok {
			return header{}, errorf(CodeMalformed, nil, "kid is not a string")
		}
		h.kid, h.hasKid = s, true
	}
	return h, nil
}

// keyfunc returns the keys that may verify a token with header h: the dev
// secret for HS256; for EdDSA and RS256 the static and remote keys of that
// alg whose ID is the kid or empty (any ID when the token has none). When none
// fits and a JWKS URL is configured, it asks for a rate-limited refresh.
func (v *Verifier) keyfunc(ctx context.Context, h header) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if t.Method.Alg() != h.alg { // cannot happen: both read the same header
			return nil, errorf(CodeMalformed, nil, "inconsistent alg")
		}
		if h.alg == AlgHS256 {
			return v.hmac, nil
		}
		var seen *[]verKey
		if v.remote != nil {
			seen = v.remote.current()
		}
		keys := v.match(h, seen)
		if len(keys) == 0 && v.remote != nil && v.remote.refreshForUnknown(ctx, seen) {
			keys = v.match(h, v.remote.current())
		}
		switch len(keys) {
		case 0:
			if h.hasKid {
				return nil, errorf(CodeUnknownKey, nil, "no %s key with kid %q", h.alg, truncate(h.kid, 64))
			}
			return nil, errorf(CodeUnknownKey, nil, "no %s key", h.alg)
		case 1:
			return keys[0], nil
		default:
			return jwt.VerificationKeySet{Keys: keys}, nil
		}
	}
}

func (v *Verifier) match(h header, remote *[]verKey) []jwt.VerificationKey {
	var out []jwt.VerificationKey
	add := func(keys []verKey) {
		for _, k := range keys {
			if k.alg == h.alg && (!h.hasKid || k.id == "" || k.id == h.kid) {
				out = append(out, k.pub)
			}
		}
	}
	add(v.static)
	if remote != nil {
		add(*remote)
	}
	return out
}

// checkClaims applies the claim rules of Verify to a token whose signature
// has verified.
func (v *Verifier) checkClaims(c *tokenClaims) (*Principal, error) {
	if c.ExpiresAt == nil {
		return nil, errorf(CodeMissingClaim, nil, "exp is required")
	}
	if c.Subject == "" {
		return nil, errorf(CodeMissingClaim, nil, "sub is required")
	}
	for _, f := range []struct{ name, val string }{{"sub", c.Subject}, {"name", c.Name}} {
		if len(f.val) > MaxSubjectBytes || !utf8.ValidString(f.val) {
			return nil, errorf(CodeMalformed, nil, "%s is longer than %d bytes or not UTF-8", f.name, MaxSubjectBytes)
		}
	}
	var docs Docs
	if c.Docs != nil {
		docs = *c.Docs
		if err := docs.validate(); err != nil {
			return nil, errorf(CodeMalformed, err, "docs claim")
		}
	}
	if v.issuer != "" && c.Issuer != v.issuer {
		return nil, errorf(CodeBadIssuer, nil, "iss %q is not %q", truncate(c.Issuer, 64), v.issuer)
	}
	if v.audience != "" && !slices.Contains(c.Audience, v.audience) {
		return nil, errorf(CodeBadAudience, nil, "aud does not contain %q", v.audience)
	}
	now := v.now()
	if c.NotBefore != nil && now.Add(v.leeway).Before(c.NotBefore.Time) {
		return nil, errorf(CodeNotYetValid, nil, "nbf %s is after now %s (leeway %v)", stamp(c.NotBefore.Time), stamp(now), v.leeway)
	}
	if c.IssuedAt != nil && now.Add(v.leeway).Before(c.IssuedAt.Time) {
		return nil, errorf(CodeNotYetValid, nil, "iat %s is after now %s (leeway %v)", stamp(c.IssuedAt.Time), stamp(now), v.leeway)
	}
	if !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return nil, errorf(CodeExpired, nil, "exp %s is before now %s (leeway %v)", stamp(c.ExpiresAt.Time), stamp(now), v.leeway)
	}
	p := &Principal{
		Subject:   c.Subject,
		Name:      c.Name,
		Issuer:    c.Issuer,
		Audience:  slices.Clone([]string(c.Audience)),
		ExpiresAt: c.ExpiresAt.Time,
		Docs:      docs,
	}
	if c.IssuedAt != nil {
		p.IssuedAt = c.IssuedAt.Time
	}
	return p, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// truncate shortens attacker-chosen strings quoted in error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:n], len(s))
}
