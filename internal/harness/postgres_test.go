package harness_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/palimpsest-editor/palimpsest/internal/harness"
)

// eventually retries f until it succeeds or 20 s pass: clients may see one error from a
// connection the server closed before they reconnect.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for tries := 1; ; tries++ {
		err := f()
		if err == nil {
			if tries > 1 {
				t.Logf("%s: ok after %d tries", what, tries)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v (after %d tries)", what, err, tries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPostgresRestartKeepsDataAndClientReconnects(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pg := harness.NewPostgres(t)
	pool, err := pgxpool.New(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	if _, err := pool.Exec(ctx, `CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	insert := func(id int, body string) {
		t.Helper()
		if _, err := pool.Exec(ctx, `INSERT INTO notes VALUES ($1, $2)`, id, body); err != nil {
			t.Fatalf("insert %d: %v", id, err)
		}
	}
	wantRows := func(step string, want int) {
		t.Helper()
		eventually(t, step, func() error {
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM notes`).Scan(&n); err != nil {
				return err
			}
			if n != want {
				t.Fatalf("%s: %d rows, want %d", step, n, want)
			}
			return nil
		})
	}
	insert(1, "before restart")
	var body string
	if err := pool.QueryRow(ctx, `SELECT body FROM notes WHERE id = 1`).Scan(&body); err != nil || body != "before restart" {
		t.Fatalf("select: %q, %v", body, err)
	}

	port := pg.Port()
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	if pg.Port() != port {
		t.Fatalf("port changed across restart: %d, then %d", port, pg.Port())
	}
	wantRows("after restart", 1)
	insert(2, "before kill")

	// A crash: committed rows survive, crash recovery runs on start.
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(ctx); err == nil {
		t.Fatal("ping succeeded with the server killed")
	}
	if err := pg.Kill(); !errors.Is(err, harness.ErrNotRunning) {
		t.Fatalf("second Kill: %v, want ErrNotRunning", err)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	wantRows("after kill and start", 2)

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if pg.Running() {
		t.Fatal("running after Stop")
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	wantRows("after stop and start", 2)
}

// A killed Postgres with clients connected must come back: its backends go with it.
func TestPostgresKillWithOpenTransaction(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pg := harness.NewPostgres(t)
	pool, err := pgxpool.New(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE t (v int)`); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("commit succeeded on a killed server")
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "count after kill", func() error {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			t.Fatalf("uncommitted row survived the crash: %d rows", n)
		}
		return nil
	})
}

func TestSharedPostgresDatabasesAreSeparate(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"a", "b", "c"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			dsn := harness.SharedPostgres(t).NewDatabase(t)
			pool, err := pgxpool.New(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			// The same table name in every subtest: only separate databases allow it.
			if _, err := pool.Exec(ctx, `CREATE TABLE items (name text)`); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, `INSERT INTO items VALUES ($1)`, name); err != nil {
				t.Fatal(err)
			}
			var got []string
			rows, err := pool.Query(ctx, `SELECT name FROM items`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				got = append(got, s)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != name {
				t.Fatalf("items = %q, want [%q]", got, name)
			}
		})
	}
}

func TestPostgresDropDatabaseDisconnectsClients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := harness.SharedPostgres(t)
	dsn, err := pg.CreateDatabase(ctx, "drop_me")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pg.DropDatabase(ctx, "drop_me"); err != nil {
		t.Fatal(err)
	}
	if err := pg.DropDatabase(ctx, "drop_me"); err != nil {
		t.Fatalf("dropping a missing database: %v", err)
	}
}
