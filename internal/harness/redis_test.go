package harness_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/palimpsest-editor/palimpsest/internal/harness"
)

func TestRedisRestartKeepsDataAndClientReconnects(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := harness.NewRedis(t)
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()

	if err := c.Set(ctx, "doc:1", "hello", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "doc:1").Result(); err != nil || got != "hello" {
		t.Fatalf("get: %q, %v", got, err)
	}
	wantValue := func(step, key, want string) {
		t.Helper()
		eventually(t, step, func() error {
			got, err := c.Get(ctx, key).Result()
			if err != nil {
				return err
			}
			if got != want {
				t.Fatalf("%s: %s = %q, want %q", step, key, got, want)
			}
			return nil
		})
	}

	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	wantValue("after restart", "doc:1", "hello")

	if err := c.Set(ctx, "doc:2", "written just before the crash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded with the server killed")
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	wantValue("after kill and start", "doc:2", "written just before the crash")
}

func TestSharedRedisDBsAreSeparate(t *testing.T) {
	t.Parallel()
	r := harness.SharedRedis(t)
	seen := map[int]bool{}
	clients := make([]*redis.Client, 3)
	for i := range clients {
		db := r.NewDB(t)
		if db == 0 || seen[db] {
			t.Fatalf("NewDB gave %d (seen: %v)", db, seen)
		}
		seen[db] = true
		clients[i] = redis.NewClient(&redis.Options{Addr: r.Addr(), DB: db})
		defer clients[i].Close()
	}
	ctx := t.Context()
	for i, c := range clients {
		if err := c.Set(ctx, "k", strconv.Itoa(i), time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range clients {
		if got, err := c.Get(ctx, "k").Result(); err != nil || got != strconv.Itoa(i) {
			t.Fatalf("client %d: k = %q, %v", i, got, err)
		}
	}
}
