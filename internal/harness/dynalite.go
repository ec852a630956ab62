package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dynalite is a DynamoDB-compatible server (the dynalite npm package, a Node.js
// implementation of the DynamoDB API on LevelDB) on 127.0.0.1, plain HTTP. It checks no
// signatures: any region and any credentials work. Tables become ACTIVE at once. Its data
// survives Stop, Kill and Restart. Unlike DynamoDB it has no transactions
// (TransactWriteItems) and no streams; conditional writes work.
type Dynalite struct {
	*Server
}

// NewDynalite starts a dynalite server that belongs to the test; see NewPostgres.
func NewDynalite(t testing.TB) *Dynalite {
	t.Helper()
	d, err := StartDynalite()
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, d.Server)
	return d
}

// StartDynalite starts dynalite in a new temporary directory on a free port. The caller
// must Close it.
func StartDynalite() (*Dynalite, error) {
	node, script, err := dynaliteBinary()
	if err != nil {
		return nil, err
	}
	dir, err := newServerDir("dynalite", nil)
	if err != nil {
		return nil, err
	}
	d := &Dynalite{Server: &Server{
		name:         "dynalite",
		dir:          dir,
		stopSignal:   syscall.SIGTERM,
		readyTimeout: 30 * time.Second,
		logPath:      logPathIn(dir),
	}}
	data := filepath.Join(dir, "data")
	d.command = func() *exec.Cmd {
		return exec.Command(node, script,
			"--host", "127.0.0.1",
			"--port", strconv.Itoa(d.port),
			"--path", data,
			"--createTableMs", "0",
			"--deleteTableMs", "0",
			"--updateTableMs", "0")
	}
	d.ready = d.ping
	err = startOnFreePort(d.Server, func() (err error) {
		d.port, err = freePort()
		return err
	})
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	return d, nil
}

// Endpoint is the server's URL, for the AWS SDK's BaseEndpoint.
func (d *Dynalite) Endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(d.port) }

// ping asks dynalite's health check, which answers "healthy: ..." once it serves.
func (d *Dynalite) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.Endpoint()+"/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "healthy") {
		return fmt.Errorf("GET /: %s %q", resp.Status, body)
	}
	return nil
}

// NodeDir is where scripts/deps.sh installs npm packages (dynalite):
// $PALIMPSEST_NODE_DIR, else os.UserCacheDir()/palimpsest/node.
func NodeDir() string {
	if d := os.Getenv("PALIMPSEST_NODE_DIR"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "palimpsest", "node")
}

// dynaliteBinary returns node and dynalite's command-line script: $PALIMPSEST_DYNALITE
// (the script, or a directory holding the package), else the package under NodeDir,
// else a dynalite on PATH.
func dynaliteBinary() (node, script string, err error) {
	node, lerr := exec.LookPath("node")
	if lerr != nil {
		return "", "", notInstalled("node (Node.js 20 or later, to run dynalite)", "PATH")
	}
	isFile := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && fi.Mode().IsRegular()
	}
	cli := func(pkg string) string { return filepath.Join(pkg, "cli.js") }
	if p := os.Getenv("PALIMPSEST_DYNALITE"); p != "" {
		switch {
		case isFile(cli(p)):
			return node, cli(p), nil
		case isFile(p):
			return node, p, nil
		}
		return "", "", notInstalled("dynalite", "$PALIMPSEST_DYNALITE="+p)
	}
	if dir := NodeDir(); dir != "" {
		if pkg := filepath.Join(dir, "node_modules", "dynalite"); isFile(cli(pkg)) {
			return node, cli(pkg), nil
		}
	}
	if p, err := exec.LookPath("dynalite"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return node, real, nil
		}
	}
	return "", "", notInstalled("dynalite", "$PALIMPSEST_DYNALITE, "+filepath.Join(NodeDir(), "node_modules", "dynalite")+", PATH")
}
