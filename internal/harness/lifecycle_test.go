package harness_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/internal/harness"
)

func TestCloseRemovesEverything(t *testing.T) {
	t.Parallel()
	r, err := harness.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	pid, dir, addr := r.PID(), r.Dir(), r.Addr()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := r.Start(); err == nil {
		t.Fatal("Start after Close succeeded")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there after Close: %v", dir, err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("pid %d still alive after Close", pid)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Close", addr)
	}
}

// A test binary that dies without cleaning up must not leave servers running.
func TestServersDieWithTheTestBinary(t *testing.T) {
	if os.Getenv("HARNESS_ORPHAN_CHILD") == "1" {
		r, err := harness.StartRedis()
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(r.PID(), r.Dir())
		os.Exit(0) // no Close: the parent-death signal has to do it
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServersDieWithTheTestBinary$")
	cmd.Env = append(os.Environ(), "HARNESS_ORPHAN_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	var dir string
	line, _ := bufio.NewReader(out).ReadString('\n')
	_ = cmd.Wait()
	if _, err := fmt.Sscan(line, &pid, &dir); err != nil {
		t.Fatalf("child said %q: %v", line, err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("redis-server (pid %s) outlived the test binary that started it", strconv.Itoa(pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
