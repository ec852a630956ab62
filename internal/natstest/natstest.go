// Package natstest runs real nats-server clusters for tests: every node is a
// separate process (the test binary re-executed), so a test can SIGKILL one.
//
// The test binary's TestMain must call RunNodeIfChild first:
//
//	func TestMain(m *testing.M) {
//		natstest.RunNodeIfChild()
//		os.Exit(m.Run())
//	}
//
//	c := natstest.StartCluster(t, 3)   // three nodes on loopback, random ports
//	log, err := eventlog.Connect(ctx, c.URL(), cfg)
//	c.Nodes[0].Kill(t)                  // SIGKILL
//	c.Nodes[0].Start(t)                 // same ports and data directory
//
// A node process exits when its parent's end of its stdin closes, so none
// outlives the test binary.
package natstest

import (
	"encoding/json"
	"fmt"
	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
)

const envNode = "PALIMPSEST_NATSTEST_NODE"

type nodeSpec struct {
	Name, Cluster, Dir string
	ClientPort         int
	RoutePort          int
	Routes             []string
}

// RunNodeIfChild runs a cluster node and never returns when this process was
// started as one by StartCluster; otherwise it returns at once.
func RunNodeIfChild() {
	raw := os.Getenv(envNode)
	if raw == "" {
		return
	}
	var spec nodeSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "natstest node:", err)
		os.Exit(2)
	}
	s, err := eventlog.StartServer(eventlog.ServerConfig{
		DataDir: spec.Dir,
		Name:    spec.Name,
		Port:    spec.ClientPort,
		Cluster: &eventlog.ClusterConfig{Name: spec.Cluster, Port: spec.RoutePort, Routes: spec.Routes},
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "natstest node:", err)
		os.Exit(2)
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // Until the parent goes away.
	s.Shutdown()
	os.Exit(0)
}

// Cluster is a set of node processes forming one nats-server cluster.
type Cluster struct {
	Nodes []*Node
}

// Node is one node process.
type Node struct {
	spec  nodeSpec
	cmd   *exec.Cmd
	stdin io.WriteCloser
	exit  chan struct{}
}

// StartCluster starts n nodes on loopback with random ports, each with its
// own data directory under t.TempDir, and waits until every one accepts
// clients. The nodes are killed when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := harness.FreePorts(t, 2*n)
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[2*i+1]))
	}
	base := t.TempDir()
	c := &Cluster{}
	for i := range n {
		c.Nodes = append(c.Nodes, &Node{spec: nodeSpec{
			Name: fmt.Sprintf("n%d", i), Cluster: "palimpsest-test", Dir: filepath.Join(base, fmt.Sprintf("n%d", i)),
			ClientPort: ports[2*i], RoutePort: ports[2*i+1], Routes: routes,
		}})
	}
	t.Cleanup(func() {
		for _, nd := range c.Nodes {
			nd.kill()
		}
	})
	for _, nd := range c.Nodes {
		nd.Start(t)
	}
	return c
}

// URL returns every node's client URL, comma-separated, for nats.Connect.
func (c *Cluster) URL() string {
	var urls []string
	for _, nd := range c.Nodes {
		urls = append(urls, nd.URL())
	}
	return strings.Join(urls, ",")
}

// Node returns the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, nd := range c.Nodes {
		if nd.spec.Name == name {
			return nd
		}
	}
	return nil
}

// Name returns the node's server name.
func (n *Node) Name() string { return n.spec.Name }

// URL returns the node's client URL.
func (n *Node) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.spec.ClientPort) }

// Running reports whether the node's process is alive.
func (n *Node) Running() bool {
	if n.exit == nil {
		return false
	}
	select {
	case <-n.exit:
		return false
	default:
		return true
	}
}

// Start starts the node's process (again, after Kill) with the same ports and
// data directory and waits until it accepts clients.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	if n.Running() {
		t.Fatalf("natstest: node %s is already running", n.spec.Name)
	}
	spec, _ := json.Marshal(n.spec)
	if err := os.MkdirAll(n.spec.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(n.spec.Dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envNode+"="+string(spec))
	cmd.Stdout, cmd.Stderr = logf, logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd, n.stdin, n.exit = cmd, stdin, make(chan struct{})
	go func(exit chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(exit)
	}(n.exit)
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.spec.ClientPort), 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return
		}
		if !n.Running() || time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(n.spec.Dir, "server.log"))
			t.Fatalf("natstest: node %s did not start: %v\n%s", n.spec.Name, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL to the node's process and waits until it is gone: no
// shutdown, no flush, like a power cut for everything the server had not
// synced.
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	if !n.Running() {
		t.Fatalf("natstest: node %s is not running", n.spec.Name)
	}
	n.kill()
}

func (n *Node) kill() {
	if !n.Running() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exit
	n.stdin.Close()
}
