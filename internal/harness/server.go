package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// stopGrace is how long Stop waits after the polite signal before SIGKILL.
	stopGrace = 15 * time.Second
	// killWait bounds the wait for SIGKILLed processes to be gone.
	killWait = 30 * time.Second
)

// ErrNotRunning is returned by Kill for a server that is not running.
var ErrNotRunning = errors.New("harness: server is not running")

// Server is one server process on a fixed loopback port with its data in Dir. Its
// methods are safe for concurrent use. Start, Stop, Kill and Restart keep the port and
// the data; Close stops the server and removes Dir.
type Server struct {
	name         string                          // "postgres", for messages
	dir          string                          // removed by Close
	port         int                             // fixed for the server's life
	stopSignal   syscall.Signal                  // the polite one
	cred         *syscall.Credential             // run as this user, or nil
	command      func() *exec.Cmd                // a new command for each start
	ready        func(ctx context.Context) error // nil once the server serves
	readyTimeout time.Duration
	logPath      string // the server's stdout and stderr, appended across starts
	onClose      func() // after the process is stopped, before dir is removed

	mu     sync.Mutex    // guards the fields below
	cmd    *exec.Cmd     // nil when not running
	done   chan struct{} // closed when cmd has been reaped
	closed bool
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir is the server's temporary directory: its data and its log.
func (s *Server) Dir() string { return s.dir }

// LogPath is the file that holds everything the server printed, across restarts.
func (s *Server) LogPath() string { return s.logPath }

// LogTail returns about the last n bytes of the server's log.
func (s *Server) LogTail(n int) string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > int64(n) {
		_, _ = f.Seek(-int64(n), io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// PID is the process id of the running server (the leader of its process group), or 0.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running reports whether the server process is running (it may not be ready yet).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Start starts the server on its port with its data and waits until it serves requests.
// It is an error to Start a running or closed server. If the server does not become
// ready in time it is killed and the error carries the end of its log.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("harness: %s: start after Close", s.name)
	}
	if s.cmd != nil {
		select {
		case <-s.done:
			s.cmd = nil // exited on its own; start it again
		default:
			return fmt.Errorf("harness: %s on port %d: already running", s.name, s.port)
		}
	}
	return s.startLocked()
}

func (s *Server) startLocked() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("harness: %s: open log: %w", s.name, err)
	}
	defer logf.Close() // the child keeps its own descriptor
	logStart, _ := logf.Seek(0, io.SeekEnd)

	cmd := s.command()
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,            // so that Kill can take the whole group
		Pdeathsig:  syscall.SIGKILL, // a dying test binary takes its servers along
		Credential: s.cred,
	}
	fmt.Fprintf(logf, "--- harness %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(cmd.Args, " "))
	if err := spawn(cmd); err != nil {
		return fmt.Errorf("harness: %s: start %s: %w", s.name, cmd.Path, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	if err := s.waitReady(done); err != nil {
		_ = s.killLocked()
		return &startError{name: s.name, port: s.port, err: err, log: s.logSince(logStart)}
	}
	return nil
}

// startError says why a server did not come up, with what it printed.
type startError struct {
	name string
	port int
	err  error
	log  string
}

func (e *startError) Error() string {
	return fmt.Sprintf("harness: %s on port %d did not become ready: %v\n--- its log:\n%s", e.name, e.port, e.err, e.log)
}

func (e *startError) Unwrap() error { return e.err }

// addrInUse reports whether err says the port was taken by someone else.
func addrInUse(err error) bool {
	var se *startError
	return errors.As(err, &se) && strings.Contains(strings.ToLower(se.log), "in use")
}

func (s *Server) logSince(off int64) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil || off > int64(len(b)) {
		return ""
	}
	b = b[off:]
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

func (s *Server) waitReady(done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.readyTimeout)
	defer cancel()
	delay := 20 * time.Millisecond
	var last error
	for {
		select {
		case <-done:
			return fmt.Errorf("exited during start-up (last check: %v)", last)
		default:
		}
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		last = s.ready(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("exited during start-up (last check: %v)", last)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v: %w", s.readyTimeout, last)
		case <-time.After(delay):
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
}

// Stop stops the server politely (Postgres: SIGINT, a fast shutdown; the others:
// SIGTERM), waits for it to exit, and after stopGrace sends SIGKILL to its process group.
// Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(s.stopSignal)
	select {
	case <-s.done:
		// Anything left in the group (there should be nothing) goes too.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		s.cmd = nil
		return nil
	case <-time.After(stopGrace):
	}
	if err := s.killLocked(); err != nil {
		return err
	}
	return fmt.Errorf("harness: %s on port %d did not stop within %v of %v; killed it", s.name, s.port, stopGrace, s.stopSignal)
}

// Kill sends SIGKILL to the server and every process it started, as a crash or the OOM
// killer would, and waits until they are gone. The data stays; Start recovers from it.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("%w: %s on port %d", ErrNotRunning, s.name, s.port)
	}
	return s.killLocked()
}

func (s *Server) killLocked() error {
	pid := s.cmd.Process.Pid
	// Freeze the leader so it forks nothing new, then kill it, its process group and every
	// descendant: PostgreSQL's backends are in sessions of their own, and one that outlives
	// its postmaster can still commit, and holds the shared memory a restart needs.
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	victims := append(descendants(pid), pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	for _, v := range victims {
		_ = syscall.Kill(v, syscall.SIGKILL)
	}
	select {
	case <-s.done:
	case <-time.After(killWait):
		return fmt.Errorf("harness: %s (pid %d) still there %v after SIGKILL", s.name, pid, killWait)
	}
	deadline := time.Now().Add(killWait)
	for _, v := range victims {
		for alive(v) {
			if time.Now().After(deadline) {
				return fmt.Errorf("harness: %s: process %d still there %v after SIGKILL", s.name, v, killWait)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	s.cmd = nil
	return nil
}

// Restart stops the server (as Stop) and starts it again on the same port with the same data.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("harness: %s: restart after Close", s.name)
	}
	if err := s.stopLocked(); err != nil {
		return err
	}
	return s.startLocked()
}

// Close stops the server and removes its directory. Closing twice does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.stopLocked()
	if s.onClose != nil {
		s.onClose()
	}
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("harness: %s: remove %s: %w", s.name, s.dir, rmErr)
	}
	return err
}

// newServerDir makes the temporary directory of one server, owned by cred's user if set.
func newServerDir(name string, cred *syscall.Credential) (string, error) {
	dir, err := os.MkdirTemp("", "palimpsest-"+name+"-*")
	if err != nil {
		return "", fmt.Errorf("harness: %s: %w", name, err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("harness: %s: chown %s: %w", name, dir, err)
		}
	}
	return dir, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("harness: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startOnFreePort starts s, picking its port(s) with pick; if another process took
// the port in the meantime it picks again, a few times.
func startOnFreePort(s *Server, pick func() error) error {
	var err error
	for range 4 {
		if err = pick(); err != nil {
			return err
		}
		if err = s.Start(); err == nil || !addrInUse(err) {
			return err
		}
	}
	return err
}

// spawn starts cmd from one OS thread that never exits. The parent-death signal is tied
// to the thread that forked, not the process: a Go thread that exits (which happens to
// threads left locked by a goroutine) would otherwise kill the servers it had started.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread lives as long as the process
			for r := range spawnReqs {
				r.result <- r.cmd.Start()
			}
		}()
	})
	result := make(chan error, 1)
	spawnReqs <- spawnReq{cmd, result}
	return <-result
}

type spawnReq struct {
	cmd    *exec.Cmd
	result chan error
}

var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

func logPathIn(dir string) string { return filepath.Join(dir, "server.log") }

// FreePorts returns n distinct loopback ports that were free a moment ago (all held open
// together while picked, so they differ). Another process may take one before it is used;
// callers that start a server retry on a bind failure.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("harness: find a free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
