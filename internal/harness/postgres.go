package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a PostgreSQL server on 127.0.0.1 with trust authentication for the
// superuser "postgres" (no password) and no TLS.
//
// It runs with fsync=off: that loses data only when the machine crashes, not when the
// server process is killed, which is the crash these tests make (Kill). Everything else
// is PostgreSQL's default, synchronous_commit included.
type Postgres struct {
	*Server
}

// StartPostgres initialises a new cluster in a new temporary directory and starts
// PostgreSQL on a free port. The caller must Close it.
func StartPostgres() (*Postgres, error) {
	binDir, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	dir, err := newServerDir("postgres", cred)
	if err != nil {
		return nil, err
	}
	pg := &Postgres{Server: &Server{
		name:         "postgres",
		dir:          dir,
		stopSignal:   syscall.SIGINT, // fast shutdown; SIGTERM would wait for clients to leave
		cred:         cred,
		readyTimeout: 60 * time.Second,
		logPath:      logPathIn(dir),
	}}
	data := filepath.Join(dir, "data")
	if err := pg.initdb(binDir, data); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	pg.command = func() *exec.Cmd {
		return exec.Command(filepath.Join(binDir, "postgres"),
			"-D", data,
			"-p", strconv.Itoa(pg.port),
			"-h", "127.0.0.1",
			"-k", dir, // its Unix socket, for psql -h DIR while debugging
			"-c", "fsync=off",
			"-c", "max_connections=200",
		)
	}
	pg.ready = pg.ping
	err = startOnFreePort(pg.Server, func() (err error) {
		pg.port, err = freePort()
		return err
	})
	if err != nil {
		_ = pg.Close()
		return nil, err
	}
	return pg, nil
}

func (pg *Postgres) initdb(binDir, data string) error {
	logf, err := os.Create(pg.logPath)
	if err != nil {
		return fmt.Errorf("harness: postgres: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(binDir, "initdb"),
		"-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync")
	cmd.Dir = pg.dir // initdb wants a working directory it may enter
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("harness: postgres: initdb in %s: %w\n--- its output:\n%s", data, err, pg.LogTail(4096))
	}
	return nil
}

func (pg *Postgres) ping(ctx context.Context) error {
	conn, err := pg.connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

func (pg *Postgres) connect(ctx context.Context, database string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(pg.DatabaseDSN(database))
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = 5 * time.Second
	return pgx.ConnectConfig(ctx, cfg)
}

// DSN is the URL of the database "postgres" as user "postgres", for pgx and libpq.
func (pg *Postgres) DSN() string { return pg.DatabaseDSN("postgres") }

// DatabaseDSN is the URL of the named database on this server.
func (pg *Postgres) DatabaseDSN(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.port, database)
}

// CreateDatabase creates an empty database and returns its DSN.
func (pg *Postgres) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pg.connect(ctx, "postgres")
	if err != nil {
		return "", fmt.Errorf("harness: postgres: create database %q: %w", name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("harness: postgres: create database %q: %w", name, err)
	}
	return pg.DatabaseDSN(name), nil
}

// DropDatabase drops a database, disconnecting its clients. A missing one is no error.
func (pg *Postgres) DropDatabase(ctx context.Context, name string) error {
	conn, err := pg.connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("harness: postgres: drop database %q: %w", name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("harness: postgres: drop database %q: %w", name, err)
	}
	return nil
}
