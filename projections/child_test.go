package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/pgstate"
)

// The crash tests run the projector (or a rebuild) in a child process: the
// test binary itself, re-executed with envChild set to a childSpec. envFault
// ("point:n") makes the child SIGKILL itself the n-th time it reaches the
// named point. A projector child runs until its stdin closes.
const (
	envChild = "PALIMPSEST_PROJECTOR_CHILD"
	envFault = "PALIMPSEST_PROJECTOR_FAULT"
)

type childSpec struct {
	Mode      string // "projector" or "rebuild"
	NATS      string
	Stream    string
	Prefix    string
	Marks     string
	Parts     int
	Postgres  string
	Owner     string
	BatchSize int
}

func runChild() int {
	var spec childSpec
	if err := json.Unmarshal([]byte(os.Getenv(envChild)), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fault := func(string) {}
	if f := os.Getenv(envFault); f != "" {
		point, n, _ := strings.Cut(f, ":")
		left, _ := strconv.Atoi(n)
		fault = func(at string) {
			if at != point {
				return
			}
			if left--; left <= 0 {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // The signal is on its way.
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := eventlog.Connect(ctx, spec.NATS, eventlog.Config{Stream: spec.Stream, SubjectPrefix: spec.Prefix, MarksBucket: spec.Marks, Partitions: spec.Parts})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer l.Close()
	pg, err := pgstate.Open(ctx, spec.Postgres)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer pg.Close()
	if spec.Mode == "rebuild" {
		_, err := projections.Rebuild(ctx, projections.RebuildConfig{Log: l, State: pg, BatchSize: spec.BatchSize, Fault: fault, Logger: logger})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child: rebuild:", err)
			return 1
		}
		return 0
	}
	p, err := projections.New(projections.Config{Log: l, State: pg, Owner: spec.Owner, BatchSize: spec.BatchSize,
		LeaseTTL: time.Second, Fault: fault, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // Until the parent closes it.
		cancel()
	}()
	_ = p.Run(ctx)
	return 0
}

// child is a running child process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

func startChild(t *testing.T, spec childSpec, fault string) *child {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+string(raw), envFault+"="+fault)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})
	return c
}

// waitKilled waits for the child to die of SIGKILL.
func (c *child) waitKilled(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(within):
		t.Fatalf("the child did not reach its fault point within %s", within)
	}
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child exited with %v, want death by SIGKILL", c.cmd.ProcessState)
	}
}

// stop closes the child's stdin and waits for it to exit.
func (c *child) stop(t *testing.T) {
	t.Helper()
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not stop")
	}
}

func specFor(mode, url string, cfg eventlog.Config, dsn string, batch int) childSpec {
	return childSpec{Mode: mode, NATS: url, Stream: cfg.Stream, Prefix: cfg.SubjectPrefix, Marks: cfg.MarksBucket, Parts: cfg.Partitions, Postgres: dsn, BatchSize: batch}
}
