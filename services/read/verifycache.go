package read

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/palimpsest-editor/palimpsest/services/auth"
)

// verifyCache remembers tokens that verified, so that a client reading
// often pays the signature check (an Ed25519 verify: most of a cache hit's
// cost) once per TTL instead of once per request. A token's verification
// changes only with time (handled: an entry never outlives the token's exp)
// and with the trusted keys (a removed key's tokens stay accepted for at
// most TTL). Failures are never cached. Keys are SHA-256 sums: no token is
// kept.
type verifyCache struct {
	v   TokenVerifier
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]verified
}

type verified struct {
	p     *auth.Principal
	until time.Time
}

func newVerifyCache(v TokenVerifier, ttl time.Duration, max int, now func() time.Time) *verifyCache {
	return &verifyCache{v: v, ttl: ttl, max: max, now: now, m: map[[sha256.Size]byte]verified{}}
}

// Verify implements TokenVerifier.
func (c *verifyCache) Verify(ctx context.Context, token string) (*auth.Principal, error) {
	if c.ttl <= 0 {
		return c.v.Verify(ctx, token)
	}
	key := sha256.Sum256([]byte(token))
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.p, nil
	}
	p, err := c.v.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	until := now.Add(c.ttl)
	if p.ExpiresAt.Before(until) {
		until = p.ExpiresAt
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, old := range c.m { // Drop the expired, or else any one.
			if !now.Before(old.until) || len(c.m) >= c.max {
				delete(c.m, k)
			}
			if len(c.m) < c.max/2 {
				break
			}
		}
	}
	c.m[key] = verified{p: p, until: until}
	return p, nil
}
