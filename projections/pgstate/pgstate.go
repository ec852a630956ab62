// Package pgstate is the PostgreSQL adapter of the state projection
// (projections.StateBackend): the production source of truth.
//
//	b, err := pgstate.Open(ctx, "postgres://...")   // runs the migrations
//	store, err := b.Live(ctx)                       // the live generation
//	err = store.Commit(ctx, &projections.Commit{...})
//
// Layout: generation N of the projection is two tables, state_gN (one row a
// document: version, ops, updated, author, text as UTF-8 bytes, CRDT state)
// and checkpoints_gN (one row a partition: sequence and epoch).
// projection_live names the live generation and the view "documents" reads
// it; Promote changes both in one transaction. A Commit is one transaction:
// it takes the live pointer FOR SHARE (so it cannot interleave with a
// Promote), upserts the checkpoints only where the stored epoch is not
// newer (fencing), upserts the documents only where the stored version is
// older, and commits; anything unexpected rolls it all back.
//
// Schema changes go through goose migrations (migrations/*.sql), run by Open
// under goose's Postgres session lock, so any number of processes may Open
// at once.
package pgstate

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// projection is the name of the state projection in projection_live.
const projection = "state"

// Backend is the state projection in one PostgreSQL database. It is safe for
// concurrent use.
type Backend struct {
	pool *pgxpool.Pool
}

// Open connects to the database at dsn, migrates its schema to the newest
// version and returns the backend. Close releases it.
func Open(ctx context.Context, dsn string) (*Backend, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstate: parse DSN: %w", err)
	}
	cfg.MaxConns = max(cfg.MaxConns, 8)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstate: connect: %w", err)
	}
	b := &Backend{pool: pool}
	if err := b.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return b, nil
}

// Pool returns the connection pool, for tests and tools.
func (b *Backend) Pool() *pgxpool.Pool { return b.pool }

// Close closes the pool.
func (b *Backend) Close() { b.pool.Close() }

func (b *Backend) migrate(ctx context.Context) error {
	db := stdlib.OpenDBFromPool(b.pool)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("pgstate: migrations: %w", err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("pgstate: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("pgstate: migrate: %w", err)
	}
	return nil
}

// Live implements projections.StateBackend. The first call on an empty
// database creates generation 1 and makes it live.
func (b *Backend) Live(ctx context.Context) (projections.StateStore, error) {
	var gen int
	err := b.pool.QueryRow(ctx, `SELECT generation FROM projection_live WHERE projection = $1`, projection).Scan(&gen)
	if errors.Is(err, pgx.ErrNoRows) {
		return b.bootstrap(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("pgstate: live generation: %w", err)
	}
	return &Store{b: b, gen: gen}, nil
}

func (b *Backend) bootstrap(ctx context.Context) (projections.StateStore, error) {
	var gen int
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('palimpsest.projection.' || $1))`, projection); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT generation FROM projection_live WHERE projection = $1`, projection).Scan(&gen)
		if err == nil {
			return nil // Another process bootstrapped it.
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if gen, err = createGeneration(ctx, tx); err != nil {
			return err
		}
		return promote(ctx, tx, gen)
	})
	if err != nil {
		return nil, fmt.Errorf("pgstate: create the first generation: %w", err)
	}
	return &Store{b: b, gen: gen}, nil
}

// Fresh implements projections.StateBackend.
func (b *Backend) Fresh(ctx context.Context) (projections.StateStore, error) {
	var gen int
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('palimpsest.projection.' || $1))`, projection); err != nil {
			return err
		}
		var err error
		gen, err = createGeneration(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstate: new generation: %w", err)
	}
	return &Store{b: b, gen: gen}, nil
}

// Promote implements projections.StateBackend: the pointer row and the view
// change in one transaction. The previous generation's tables stay (for a
// look or a roll back); Drop removes old ones.
func (b *Backend) Promote(ctx context.Context, s projections.StateStore) error {
	st, ok := s.(*Store)
	if !ok || st.b != b {
		return errors.New("pgstate: Promote needs a store of this backend")
	}
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		return promote(ctx, tx, st.gen)
	})
	if err != nil {
		return fmt.Errorf("pgstate: promote generation %d: %w", st.gen, err)
	}
	return nil
}

// DropOld drops every generation older than the live one except the newest
// keep of them.
func (b *Backend) DropOld(ctx context.Context, keep int) error {
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT g.generation FROM projection_generations g JOIN projection_live l USING (projection)
			WHERE g.projection = $1 AND g.generation < l.generation ORDER BY g.generation DESC OFFSET $2`, projection, keep)
		if err != nil {
			return err
		}
		gens, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return err
		}
		for _, g := range gens {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS state_g%d, checkpoints_g%d`, g, g)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM projection_generations WHERE projection = $1 AND generation = $2`, projection, g); err != nil {
				return err
			}
		}
		return nil
	})
}

func createGeneration(ctx context.Context, tx pgx.Tx) (int, error) {
	var gen int
	err := tx.QueryRow(ctx, `INSERT INTO projection_generations (projection, generation)
		SELECT $1, coalesce(max(generation), 0) + 1 FROM projection_generations WHERE projection = $1
		RETURNING generation`, projection).Scan(&gen)
	if err != nil {
		return 0, err
	}
	ddl := strings.ReplaceAll(`
CREATE TABLE state_gN (
    doc       text        PRIMARY KEY,
    version   bigint      NOT NULL,
    ops       bigint      NOT NULL,
    updated   timestamptz NOT NULL,
    author    text        NOT NULL,
    text_utf8 bytea       NOT NULL,
    state     bytea       NOT NULL
);
ALTER TABLE state_gN ALTER COLUMN state SET STORAGE EXTERNAL, ALTER COLUMN text_utf8 SET STORAGE EXTERNAL;
CREATE TABLE checkpoints_gN (
    partition integer PRIMARY KEY,
    seq       bigint  NOT NULL,
    epoch     bigint  NOT NULL
);`, "_gN", fmt.Sprintf("_g%d", gen))
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return 0, err
	}
	return gen, nil
}

func promote(ctx context.Context, tx pgx.Tx, gen int) error {
	if _, err := tx.Exec(ctx, `INSERT INTO projection_live (projection, generation) VALUES ($1, $2)
		ON CONFLICT (projection) DO UPDATE SET generation = EXCLUDED.generation, promoted = now()`, projection, gen); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE OR REPLACE VIEW documents AS
		SELECT doc, version, ops, updated, author, text_utf8, state FROM state_g%d`, gen))
	return err
}

// Store is one generation of the state projection.
type Store struct {
	b   *Backend
	gen int
}

// Generation is the store's generation number.
func (s *Store) Generation() int { return s.gen }

// Load implements projections.StateStore.
func (s *Store) Load(ctx context.Context, docs []string) (map[string]projections.DocState, error) {
	rows, err := s.b.pool.Query(ctx, fmt.Sprintf(`SELECT doc, version, ops, updated, author, text_utf8, state
		FROM state_g%d WHERE doc = ANY($1)`, s.gen), docs)
	if err != nil {
		return nil, fmt.Errorf("pgstate: load %d documents: %w", len(docs), err)
	}
	defer rows.Close()
	out := make(map[string]projections.DocState, len(docs))
	for rows.Next() {
		var d projections.DocState
		var version, ops int64
		var text []byte
		if err := rows.Scan(&d.Doc, &version, &ops, &d.Updated, &d.Author, &text, &d.State); err != nil {
			return nil, fmt.Errorf("pgstate: load: %w", err)
		}
		d.Version, d.Ops, d.Text, d.Updated = uint64(version), uint64(ops), string(text), d.Updated.UTC()
		out[d.Doc] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstate: load: %w", err)
	}
	return out, nil
}

// Checkpoint implements projections.StateStore.
func (s *Store) Checkpoint(ctx context.Context, p int) (uint64, uint64, error) {
	var seq, epoch int64
	err := s.b.pool.QueryRow(ctx, fmt.Sprintf(`SELECT seq, epoch FROM checkpoints_g%d WHERE partition = $1`, s.gen), p).Scan(&seq, &epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("pgstate: checkpoint of partition %d: %w", p, err)
	}
	return uint64(seq), uint64(epoch), nil
}

// Commit implements projections.StateStore in one transaction and one round
// trip for its statements.
func (s *Store) Commit(ctx context.Context, c *projections.Commit) error {
	n := len(c.Docs)
	docs, versions, ops := make([]string, n), make([]int64, n), make([]int64, n)
	updated, authors := make([]time.Time, n), make([]string, n)
	texts, states := make([][]byte, n), make([][]byte, n)
	for i, d := range c.Docs {
		docs[i], versions[i], ops[i] = d.Doc, int64(d.Version), int64(d.Ops)
		updated[i], authors[i], texts[i], states[i] = d.Updated, d.Author, []byte(d.Text), d.State
	}
	parts, seqs := make([]int32, len(c.Checkpoints)), make([]int64, len(c.Checkpoints))
	for i, cp := range c.Checkpoints {
		parts[i], seqs[i] = int32(cp.Partition), int64(cp.Seq)
	}
	tx, err := s.b.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstate: commit: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var batch pgx.Batch
	var live int
	batch.Queue(`SELECT generation FROM projection_live WHERE projection = $1 FOR SHARE`, projection).
		QueryRow(func(r pgx.Row) error { return r.Scan(&live) })
	// Checkpoints first: the upsert locks their rows, so a newer epoch
	// committing at the same time is either seen here or waits for us.
	var written int64
	if len(parts) > 0 {
		batch.Queue(fmt.Sprintf(`WITH u AS (
			INSERT INTO checkpoints_g%[1]d AS c (partition, seq, epoch)
			SELECT p, s, $3 FROM unnest($1::integer[], $2::bigint[]) AS u(p, s)
			ON CONFLICT (partition) DO UPDATE SET seq = greatest(c.seq, EXCLUDED.seq), epoch = EXCLUDED.epoch
			WHERE c.epoch <= EXCLUDED.epoch
			RETURNING 1)
			SELECT count(*) FROM u`, s.gen), parts, seqs, int64(c.Epoch)).
			QueryRow(func(r pgx.Row) error { return r.Scan(&written) })
	}
	if n > 0 {
		batch.Queue(fmt.Sprintf(`INSERT INTO state_g%[1]d AS s (doc, version, ops, updated, author, text_utf8, state)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::text[], $6::bytea[], $7::bytea[])
			ON CONFLICT (doc) DO UPDATE SET version = EXCLUDED.version, ops = EXCLUDED.ops, updated = EXCLUDED.updated,
				author = EXCLUDED.author, text_utf8 = EXCLUDED.text_utf8, state = EXCLUDED.state
			WHERE s.version < EXCLUDED.version`, s.gen), docs, versions, ops, updated, authors, texts, states)
	}
	if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
		return fmt.Errorf("pgstate: commit generation %d: %w", s.gen, err)
	}
	if live > s.gen {
		return fmt.Errorf("%w: generation %d, live is %d", projections.ErrNotLive, s.gen, live)
	}
	if written != int64(len(parts)) {
		return fmt.Errorf("%w: epoch %d", projections.ErrFenced, c.Epoch)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstate: commit generation %d: %w", s.gen, err)
	}
	return nil
}
