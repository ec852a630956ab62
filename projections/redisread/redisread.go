// Package redisread is the Redis read model (projections.ReadModel): the
// current text and version of each document, for the read path.
//
// Each document is a hash at <prefix>doc:<id> with fields "v" (version) and
// "t" (text), expiring TTL after its last upsert. An upsert is a Lua script
// that writes only when the stored version is lower (or absent), so a late
// or replayed upsert never replaces a newer version with an older one; it
// refreshes the TTL either way. Upserts of one call are pipelined.
package redisread

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/redis/go-redis/v9"
)

// upsert: KEYS[1] the hash; ARGV: version, text, TTL in ms. Returns 1 when
// written, 0 when the stored version is at or above it.
var upsert = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 't', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// Store is the read model in one Redis database. It is safe for concurrent
// use.
type Store struct {
	c      redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// New returns a read model on c with keys under prefix (default
// "palimpsest:") that expire ttl after their last upsert (default 24 h).
func New(c redis.UniversalClient, prefix string, ttl time.Duration) *Store {
	if prefix == "" {
		prefix = "palimpsest:"
	}
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	return &Store{c: c, prefix: prefix, ttl: ttl}
}

func (s *Store) key(doc string) string { return s.prefix + "doc:" + doc }

// Upsert implements projections.ReadModel.
func (s *Store) Upsert(ctx context.Context, es []projections.ReadEntry) error {
	if len(es) == 0 {
		return nil
	}
	// Load the script once, so the pipeline can use EVALSHA.
	if err := upsert.Load(ctx, s.c).Err(); err != nil {
		return fmt.Errorf("redisread: load script: %w", err)
	}
	ttl := strconv.FormatInt(s.ttl.Milliseconds(), 10)
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range es {
			upsert.EvalSha(ctx, p, []string{s.key(e.Doc)}, e.Version, e.Text, ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisread: upsert %d documents: %w", len(es), err)
	}
	return nil
}

// Get implements projections.ReadModel.
func (s *Store) Get(ctx context.Context, doc string) (projections.ReadEntry, bool, error) {
	vals, err := s.c.HMGet(ctx, s.key(doc), "v", "t").Result()
	if errors.Is(err, redis.Nil) || (err == nil && vals[0] == nil) {
		return projections.ReadEntry{}, false, nil
	}
	if err != nil {
		return projections.ReadEntry{}, false, fmt.Errorf("redisread: get %q: %w", doc, err)
	}
	v, err := strconv.ParseUint(fmt.Sprint(vals[0]), 10, 64)
	if err != nil {
		return projections.ReadEntry{}, false, fmt.Errorf("redisread: %q: version %v: %w", doc, vals[0], err)
	}
	t, _ := vals[1].(string)
	return projections.ReadEntry{Doc: doc, Version: v, Text: t}, true, nil
}
