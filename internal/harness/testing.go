package harness

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// NewPostgres starts a PostgreSQL server that belongs to the test: the test may stop,
// kill and restart it. Cleanup closes it (and logs the end of its log if the test failed).
// A missing binary fails the test with a message that says to run `go tool task deps`.
func NewPostgres(t testing.TB) *Postgres {
	t.Helper()
	pg, err := StartPostgres()
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, pg.Server)
	return pg
}

// NewRedis starts a Redis server that belongs to the test; see NewPostgres.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	r, err := StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, r.Server)
	return r
}

// NewMinIO starts a MinIO server that belongs to the test; see NewPostgres.
func NewMinIO(t testing.TB) *MinIO {
	t.Helper()
	m, err := StartMinIO()
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, m.Server)
	return m
}

func closeOnCleanup(t testing.TB, s *Server) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("harness: end of the %s log (%s):\n%s", s.name, s.logPath, s.LogTail(4096))
		}
		if err := s.Close(); err != nil {
			t.Errorf("harness: %v", err)
		}
	})
}

// NewDatabase creates an empty database for the test and returns its DSN; cleanup drops
// it, disconnecting whatever is still connected.
func (pg *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := uniqueName(t, "_", 63)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, err := pg.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pg.DropDatabase(ctx, name); err != nil {
			t.Logf("%v (left behind)", err)
		}
	})
	return dsn
}

var nameSeq atomic.Uint64

// uniqueName makes a name unique in this process from the test's name: lower-case
// letters, digits and sep, starting with a letter, at most limit bytes.
func uniqueName(t testing.TB, sep string, limit int) string {
	var b strings.Builder
	b.WriteString("t" + strconv.FormatUint(nameSeq.Add(1), 10) + sep)
	lastSep := true
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= limit {
			break
		}
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
			lastSep = false
		} else if !lastSep {
			b.WriteString(sep)
			lastSep = true
		}
	}
	return strings.TrimRight(b.String()[:min(b.Len(), limit)], sep)
}

// Main runs the package's tests and then closes the shared servers that they started.
// Call it from TestMain; SharedPostgres, SharedRedis and SharedMinIO require it.
//
//	func TestMain(m *testing.M) { harness.Main(m) }
func Main(m *testing.M) {
	mainRunning.Store(true)
	code := m.Run()
	for _, s := range []interface{ close(failed bool) }{&sharedPostgres, &sharedRedis, &sharedMinIO} {
		s.close(code != 0)
	}
	os.Exit(code)
}

var mainRunning atomic.Bool

// SharedPostgres returns the test binary's PostgreSQL server, starting it on first use.
// Tests share it: each should take its own database with NewDatabase, and none may stop,
// kill or restart it. The package's TestMain must call Main.
func SharedPostgres(t testing.TB) *Postgres {
	t.Helper()
	return sharedPostgres.get(t, "SharedPostgres", StartPostgres)
}

// SharedRedis returns the test binary's Redis server, starting it on first use. Tests
// share it: each should take its own database index with NewDB. See SharedPostgres.
func SharedRedis(t testing.TB) *Redis {
	t.Helper()
	return sharedRedis.get(t, "SharedRedis", StartRedis)
}

// SharedMinIO returns the test binary's MinIO server, starting it on first use. Tests
// share it: each should take its own bucket with NewBucket. See SharedPostgres.
func SharedMinIO(t testing.TB) *MinIO {
	t.Helper()
	return sharedMinIO.get(t, "SharedMinIO", StartMinIO)
}

var (
	sharedPostgres shared[*Postgres]
	sharedRedis    shared[*Redis]
	sharedMinIO    shared[*MinIO]
)

// shared is one server per test binary, started once; a failed start fails every test
// that asks for it, with the same error.
type shared[S interface {
	Close() error
	LogTail(int) string
}] struct {
	once    sync.Once
	srv     S
	err     error
	started atomic.Bool
}

func (s *shared[S]) get(t testing.TB, fn string, start func() (S, error)) S {
	t.Helper()
	if !mainRunning.Load() {
		t.Fatalf("harness.%s needs the package's TestMain to call harness.Main(m), which stops shared servers after the tests", fn)
	}
	s.once.Do(func() {
		s.srv, s.err = start()
		s.started.Store(s.err == nil)
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.srv
}

func (s *shared[S]) close(failed bool) {
	if !s.started.Load() {
		return
	}
	if failed {
		fmt.Fprintf(os.Stderr, "harness: end of a shared server's log:\n%s\n", s.srv.LogTail(2048))
	}
	if err := s.srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
