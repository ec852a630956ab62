package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is one server process of the end-to-end test, run the way a container runs it: its own
// binary, arguments and environment, stdout and stderr to files. It is killed when the test
// ends, and dies with the test binary (parent-death signal).
type proc struct {
	name      string
	bin       string
	args, env []string
	logDir    string
	cmd       *exec.Cmd
	exited    chan struct{}
}

func newProc(t *testing.T, name, bin string, args, env []string, logDir string) *proc {
	p := &proc{name: name, bin: bin, args: args, env: env, logDir: logDir}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s: stdout:\n%s\nstderr (end):\n%s", p.name, p.tail("stdout", 2048), p.tail("stderr", 6144))
		}
	})
	return p
}

// start starts the process; it does not wait for it to be ready.
func (p *proc) start(t *testing.T) {
	t.Helper()
	if p.running() {
		t.Fatalf("%s is already running", p.name)
	}
	open := func(kind string) *os.File {
		f, err := os.OpenFile(filepath.Join(p.logDir, p.name+"."+kind), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	stdout, stderr := open("stdout"), open("stderr")
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(exited)
	}(p.exited)
}

func (p *proc) running() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the process group and waits for the process: a crash.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

func (p *proc) tail(kind string, n int) string {
	data, _ := os.ReadFile(filepath.Join(p.logDir, p.name+"."+kind))
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}

// waitHealthy runs check until it succeeds, like a container health check, and fails the test
// when the process exits or the deadline passes.
func (p *proc) waitHealthy(t *testing.T, timeout time.Duration, check func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = check(ctx)
		cancel()
		if err == nil {
			return
		}
		if !p.running() {
			t.Fatalf("%s exited before it was healthy (%v):\n%s", p.name, err, p.tail("stderr", 4096))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy after %s: %v\n%s", p.name, timeout, err, p.tail("stderr", 4096))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// probeCheck is the compose health check of a Palimpsest container: `palimpsest probe URL`.
func probeCheck(palimpsest, url string) func(context.Context) error {
	return func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, palimpsest, "probe", "--timeout", "2s", url).CombinedOutput()
		if err != nil {
			return fmt.Errorf("palimpsest probe %s: %v: %s", url, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
}

// baseEnv is this process's environment without anything that configures Palimpsest or NATS,
// so the processes see only what the test gives them.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PALIMPSEST_") || strings.HasPrefix(kv, "NATS_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
