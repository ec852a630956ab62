package pgstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/pgstate"
	"github.com/palimpsest-editor/palimpsest/projections/projtest"
)

func TestMain(m *testing.M) { harness.Main(m) }

func open(t *testing.T) *pgstate.Backend {
	dsn := harness.SharedPostgres(t).NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := pgstate.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestConformance(t *testing.T) {
	projtest.StateSuite(t, func(t *testing.T) projections.StateBackend { return open(t) })
}

// Open is idempotent and safe to run from many processes at once: the
// migrations run under goose's session lock.
func TestOpenConcurrently(t *testing.T) {
	dsn := harness.SharedPostgres(t).NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			b, err := pgstate.Open(ctx, dsn)
			if err == nil {
				_, err = b.Live(ctx)
				b.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	b, err := pgstate.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var n int
	if err := b.Pool().QueryRow(ctx, `SELECT count(*) FROM projection_generations`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("generations after concurrent bootstraps: %d, %v", n, err)
	}
	// The view reads the live generation.
	s, _ := b.Live(ctx)
	if err := s.Commit(ctx, &projections.Commit{Docs: []projections.DocState{{Doc: "v", Version: 1, Text: "via view", State: []byte{1}}}}); err != nil {
		t.Fatal(err)
	}
	var text []byte
	if err := b.Pool().QueryRow(ctx, `SELECT text_utf8 FROM documents WHERE doc = 'v'`).Scan(&text); err != nil || string(text) != "via view" {
		t.Fatalf("documents view: %q %v", text, err)
	}
}
