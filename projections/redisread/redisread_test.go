package redisread_test

import (
	"context"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/projtest"
	"github.com/palimpsest-editor/palimpsest/projections/redisread"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { harness.Main(m) }

func TestConformance(t *testing.T) {
	projtest.ReadModelSuite(t, func(t *testing.T) projections.ReadModel {
		r := harness.SharedRedis(t)
		c := redis.NewClient(&redis.Options{Addr: r.Addr(), DB: r.NewDB(t)})
		t.Cleanup(func() { c.Close() })
		return redisread.New(c, "", time.Hour)
	})
}

func TestTTL(t *testing.T) {
	r := harness.SharedRedis(t)
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), DB: r.NewDB(t)})
	defer c.Close()
	ctx := context.Background()
	s := redisread.New(c, "x:", 50*time.Millisecond)
	if err := s.Upsert(ctx, []projections.ReadEntry{{Doc: "d", Version: 1, Text: "t"}}); err != nil {
		t.Fatal(err)
	}
	ttl, err := c.PTTL(ctx, "x:doc:d").Result()
	if err != nil || ttl <= 0 || ttl > 50*time.Millisecond {
		t.Fatalf("TTL of an upserted entry: %v %v", ttl, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, found, err := s.Get(ctx, "d")
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry did not expire")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
