package projections_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/pgstate"
)

// TestCrash kills a projector process with SIGKILL before a batch's commit
// and after its commit but before its ack, while ops keep coming; a new
// process takes over from the checkpoint, and the state equals the fold of
// the log: no op lost, none applied twice (the ops counts match), and each
// poison event is one dead letter.
func TestCrash(t *testing.T) {
	for _, point := range []string{"before-commit", "after-commit"} {
		t.Run(point, func(t *testing.T) {
			srv := startServer(t, t.TempDir())
			cfg := logConfig(2)
			l := connect(t, srv.ClientURL(), cfg)
			ctx := ctxT(t, 3*time.Minute)
			dsn := harness.SharedPostgres(t).NewDatabase(t)
			pg := openPG(t, dsn)
			w := newWriter(t, l, 4)
			for i := range 8 {
				w.edit(ctx, fmt.Sprintf("c%d", i), 60)
			}
			w.poison(ctx, "c1", 900, 1)
			spec := specFor("projector", srv.ClientURL(), cfg, dsn, 40)
			spec.Owner = "first"
			startChild(t, spec, point+":4").waitKilled(t, time.Minute)
			live, err := pg.Live(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cp0, _, _ := live.Checkpoint(ctx, 0)
			cp1, _, _ := live.Checkpoint(ctx, 1)
			t.Logf("killed at %s with checkpoints %d and %d", point, cp0, cp1)
			if cp0+cp1 == 0 {
				t.Fatal("nothing was committed before the crash")
			}
			for i := range 8 {
				w.edit(ctx, fmt.Sprintf("c%d", i), 10)
			}
			spec.Owner = "second"
			second := startChild(t, spec, "")
			waitState(t, pg, refFold(t, l), 90*time.Second)
			second.stop(t)
			dls, err := l.DeadLetters(ctx, "projector-state")
			if err != nil || len(dls) != 1 {
				t.Fatalf("dead letters: %d %v, want 1", len(dls), err)
			}
		})
	}
}

// TestCrashMidRebuild kills a rebuild process after its second commit: the
// live generation is untouched and still serves the full state; a second
// rebuild completes and promotes a generation equal to the fold of the log.
func TestCrashMidRebuild(t *testing.T) {
	srv := startServer(t, t.TempDir())
	cfg := logConfig(3)
	l := connect(t, srv.ClientURL(), cfg)
	ctx := ctxT(t, 3*time.Minute)
	dsn := harness.SharedPostgres(t).NewDatabase(t)
	pg := openPG(t, dsn)
	w := newWriter(t, l, 5)
	for i := range 10 {
		w.edit(ctx, fmt.Sprintf("r%d", i), 80)
	}
	want := refFold(t, l)
	p, err := projections.New(projections.Config{Log: l, State: pg})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, p)
	waitState(t, pg, want, time.Minute)
	stop()
	before, _ := pg.Live(ctx)
	spec := specFor("rebuild", srv.ClientURL(), cfg, dsn, 100)
	startChild(t, spec, "rebuild-commit:2").waitKilled(t, time.Minute)
	after, _ := pg.Live(ctx)
	if after.(*pgstate.Store).Generation() != before.(*pgstate.Store).Generation() {
		t.Fatal("a killed rebuild changed the live generation")
	}
	waitState(t, pg, want, time.Second)
	c := startChild(t, spec, "")
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		t.Fatal("the rebuild did not finish")
	}
	if !c.cmd.ProcessState.Success() {
		t.Fatalf("rebuild: %v", c.cmd.ProcessState)
	}
	now, _ := pg.Live(ctx)
	if now.(*pgstate.Store).Generation() <= before.(*pgstate.Store).Generation() {
		t.Fatal("the rebuild did not promote a new generation")
	}
	waitState(t, pg, want, time.Second)
}

// TestPausedOwnerIsFenced stops a projector process (SIGSTOP) past its
// lease, lets a second process take its partitions over and fold more ops,
// then wakes the first (SIGCONT): it finds its leases gone, anything it
// tries to commit is refused by epoch, and the state equals the fold of the
// log.
func TestPausedOwnerIsFenced(t *testing.T) {
	srv := startServer(t, t.TempDir())
	cfg := logConfig(2)
	l := connect(t, srv.ClientURL(), cfg)
	ctx := ctxT(t, 3*time.Minute)
	dsn := harness.SharedPostgres(t).NewDatabase(t)
	pg := openPG(t, dsn)
	w := newWriter(t, l, 8)
	for i := range 6 {
		w.edit(ctx, fmt.Sprintf("f%d", i), 40)
	}
	spec := specFor("projector", srv.ClientURL(), cfg, dsn, 30)
	spec.Owner = "sleeper"
	first := startChild(t, spec, "")
	waitState(t, pg, refFold(t, l), time.Minute)
	if err := first.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer first.cmd.Process.Signal(syscall.SIGCONT)
	for i := range 6 {
		w.edit(ctx, fmt.Sprintf("f%d", i), 30)
	}
	spec.Owner = "successor"
	second := startChild(t, spec, "")
	waitState(t, pg, refFold(t, l), time.Minute) // Only the successor can have done this.
	if err := first.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		w.edit(ctx, fmt.Sprintf("f%d", i), 30)
	}
	waitState(t, pg, refFold(t, l), time.Minute)
	live, _ := pg.Live(ctx)
	for p := range 2 {
		if _, epoch, _ := live.Checkpoint(ctx, p); epoch == 0 {
			t.Fatalf("partition %d has no epoch", p)
		}
	}
	first.stop(t)
	second.stop(t)
}
