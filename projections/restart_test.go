package projections_test

import (
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/redisread"
	"github.com/redis/go-redis/v9"
)

// TestServerRestarts crashes PostgreSQL (SIGKILL) and then Redis while
// ops keep coming: the projector retries with backoff, waits for them and
// catches up; the state and the read model end equal to the fold of the log.
func TestServerRestarts(t *testing.T) {
	srv := startServer(t, t.TempDir())
	l := connect(t, srv.ClientURL(), logConfig(2))
	ctx := ctxT(t, 3*time.Minute)
	pgSrv := harness.NewPostgres(t)
	dsn, err := pgSrv.CreateDatabase(ctx, "restarts")
	if err != nil {
		t.Fatal(err)
	}
	pg := openPG(t, dsn)
	rs := harness.NewRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rc.Close() })
	rm := redisread.New(rc, "", time.Hour)
	p, err := projections.New(projections.Config{Log: l, State: pg, ReadModel: rm, BatchSize: 50, LeaseTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	run(t, p)
	w := newWriter(t, l, 6)
	round := func(n int) {
		for r := range n {
			for d := range 6 {
				w.edit(ctx, fmt.Sprintf("s%d", d), 5+r%3)
			}
		}
	}
	round(5)
	waitState(t, pg, refFold(t, l), time.Minute)

	if err := pgSrv.Kill(); err != nil {
		t.Fatal(err)
	}
	round(10) // The projector fails to commit these and keeps trying.
	if err := pgSrv.Start(); err != nil {
		t.Fatal(err)
	}
	waitState(t, pg, refFold(t, l), time.Minute)

	if err := rs.Kill(); err != nil {
		t.Fatal(err)
	}
	round(10) // Committed; the read model's upserts wait.
	waitState(t, pg, refFold(t, l), time.Minute)
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	want := refFold(t, l)
	eventually(t, time.Minute, func() error {
		for doc, st := range want {
			e, found, err := rm.Get(ctx, doc)
			if err != nil || !found || e.Version != st.Version || e.Text != st.Text {
				return fmt.Errorf("read model of %s: version %d found %v err %v, want %d", doc, e.Version, found, err, st.Version)
			}
		}
		return nil
	})
}

// TestNATSRestart restarts the NATS server under a running projector whose
// state lives in Postgres. The partition consumers keep their delivery state
// in memory, so the restart loses them: the projector must notice, reopen
// them at its checkpoints and fold every event exactly once.
func TestNATSRestart(t *testing.T) {
	dir := t.TempDir()
	srv, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	t.Cleanup(func() { srv.Shutdown() })
	l := connect(t, srv.ClientURL(), logConfig(3))
	ctx := ctxT(t, 3*time.Minute)
	pg := openPG(t, harness.SharedPostgres(t).NewDatabase(t))
	p, err := projections.New(projections.Config{Log: l, State: pg, BatchSize: 40, LeaseTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	run(t, p)
	w := newWriter(t, l, 9)
	for d := range 6 {
		w.edit(ctx, fmt.Sprintf("n%d", d), 30)
	}
	waitState(t, pg, refFold(t, l), time.Minute)

	srv.Shutdown()
	srv, err = eventlog.StartServer(eventlog.ServerConfig{DataDir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	for d := range 6 {
		w.edit(ctx, fmt.Sprintf("n%d", d), 30)
	}
	waitState(t, pg, refFold(t, l), 2*time.Minute)
}
