package harness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisDatabases is how many database indexes the server has; NewDB hands out 1..N-1.
const redisDatabases = 1024

// Redis is a Redis server on 127.0.0.1 without a password.
//
// Its data survives Stop, Kill and Restart: it keeps an append-only file fsynced on every
// write (appendfsync always) and no RDB snapshots. A test that wants the empty cache of
// a fresh Redis flushes it.
type Redis struct {
	*Server

	mu      sync.Mutex
	freeDBs []int // indexes that NewDB may hand out
}

// StartRedis starts Redis in a new temporary directory on a free port. The caller must
// Close it.
func StartRedis() (*Redis, error) {
	bin, err := redisBinary()
	if err != nil {
		return nil, err
	}
	dir, err := newServerDir("redis", nil)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "redis.conf")
	data := filepath.Join(dir, "data")
	err = os.Mkdir(data, 0o700)
	if err == nil {
		err = os.WriteFile(conf, fmt.Appendf(nil, `bind 127.0.0.1
protected-mode yes
daemonize no
logfile ""
dir %q
save ""
appendonly yes
appendfsync always
databases %d
`, data, redisDatabases), 0o644)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("harness: redis: %w", err)
	}
	r := &Redis{Server: &Server{
		name:         "redis",
		dir:          dir,
		stopSignal:   syscall.SIGTERM,
		readyTimeout: 30 * time.Second,
		logPath:      logPathIn(dir),
	}}
	for i := redisDatabases - 1; i >= 1; i-- {
		r.freeDBs = append(r.freeDBs, i)
	}
	r.command = func() *exec.Cmd {
		return exec.Command(bin, conf, "--port", strconv.Itoa(r.port))
	}
	r.ready = r.ping
	err = startOnFreePort(r.Server, func() (err error) {
		r.port, err = freePort()
		return err
	})
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *Redis) client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:            r.Addr(),
		DB:              db,
		DialTimeout:     2 * time.Second,
		MaxRetries:      -1,
		DisableIdentity: true,
	})
}

// ping speaks RESP itself: go-redis would log every refused dial while the server starts.
func (r *Redis) ping(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", r.Addr())
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		// -LOADING while it replays its append-only file, for one.
		return fmt.Errorf("PING: %q", strings.TrimSpace(line))
	}
	return nil
}

// NewDB hands the test a database index of its own (1 to 1023, never 0), empty, and on
// cleanup flushes it and hands it back. Use it as go-redis's Options.DB.
func (r *Redis) NewDB(t testing.TB) int {
	t.Helper()
	r.mu.Lock()
	if len(r.freeDBs) == 0 {
		r.mu.Unlock()
		t.Fatalf("harness: redis on %s: all %d database indexes are in use", r.Addr(), redisDatabases-1)
	}
	db := r.freeDBs[len(r.freeDBs)-1]
	r.freeDBs = r.freeDBs[:len(r.freeDBs)-1]
	r.mu.Unlock()

	flush := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c := r.client(db)
		defer c.Close()
		return c.FlushDB(ctx).Err()
	}
	if err := flush(); err != nil {
		t.Fatalf("harness: redis on %s: flush database %d: %v", r.Addr(), db, err)
	}
	t.Cleanup(func() {
		if err := flush(); err != nil {
			t.Logf("harness: redis on %s: flush database %d: %v (not reused)", r.Addr(), db, err)
			return
		}
		r.mu.Lock()
		r.freeDBs = append(r.freeDBs, db)
		r.mu.Unlock()
	})
	return db
}
