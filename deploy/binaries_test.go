package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built holds the binaries the tests run, built once per test binary: palimpsest from this
// module, and nats-server from the module version go.mod requires (the version the compose
// and Kubernetes images are pinned to, which the tests check).
var built struct {
	once                   sync.Once
	dir                    string
	palimpsest, natsServer string
	err                    error
}

func buildBinaries(t testing.TB) (palimpsest, natsServer string) {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "palimpsest-deploy-")
		if built.err != nil {
			return
		}
		root := repoRoot(t)
		for _, b := range []struct{ out, pkg string }{
			{filepath.Join(built.dir, "palimpsest"), "./cmd/palimpsest"},
			{filepath.Join(built.dir, "nats-server"), "github.com/nats-io/nats-server/v2"},
		} {
			cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				built.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
		built.palimpsest = filepath.Join(built.dir, "palimpsest")
		built.natsServer = filepath.Join(built.dir, "nats-server")
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.palimpsest, built.natsServer
}

// subcommandFlags returns the long flags of `palimpsest <args>`, or ok=false when the
// binary has no such subcommand (yet).
func subcommandFlags(t *testing.T, bin string, args []string) (flags []string, ok bool) {
	t.Helper()
	out, err := exec.Command(bin, append(append([]string{}, args...), "--help")...).CombinedOutput()
	if strings.Contains(string(out), "unknown command") {
		return nil, false
	}
	if err != nil {
		t.Fatalf("%s %s --help: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags = append(flags, m[1])
	}
	return flags, true
}

// TestWiringMatchesFlags checks every variable the deployment gives a service against the
// flags of the real subcommand: PALIMPSEST_METRICS_ADDR needs --metrics-addr. A subcommand
// the binary does not have yet is reported and skipped.
func TestWiringMatchesFlags(t *testing.T) {
	bin, _ := buildBinaries(t)
	for _, s := range services {
		t.Run(s.Name, func(t *testing.T) {
			flags, ok := subcommandFlags(t, bin, s.Args)
			if !ok {
				t.Skipf("palimpsest has no subcommand %q yet: compose.yaml and k8s/ run it as wiring_test.go says", strings.Join(s.Args, " "))
			}
			have := map[string]bool{}
			for _, f := range flags {
				have[f] = true
			}
			for _, env := range append(append([]string{s.AddrEnv}, s.Env...), s.Optional...) {
				flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "PALIMPSEST_")), "_", "-")
				if !have[flag] {
					t.Errorf("the deployment sets %s, but `palimpsest %s` has no --%s (flags: %s)",
						env, strings.Join(s.Args, " "), flag, strings.Join(flags, " "))
				}
			}
		})
	}
}
