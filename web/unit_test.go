package web_test

import (
	"os/exec"
	"testing"
)

// TestWASMBindingInNode runs the WebAssembly core's binding tests
// (web/test/*.test.mjs) in Node against the built dist.
func TestWASMBindingInNode(t *testing.T) {
	node := needNode(t)
	cmd := exec.Command(node, "--test", "test/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test test/: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// needNode returns the node binary or fails the test with the fix.
func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: run go tool task deps")
	}
	return node
}
