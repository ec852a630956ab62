package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// composeBinary finds the Compose CLI that scripts/deps.sh builds: $PALIMPSEST_COMPOSE, else
// docker-compose in $PALIMPSEST_BIN_DIR (default <user cache>/palimpsest/bin), else
// docker-compose on PATH. Missing is a failure, never a skip.
func composeBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PALIMPSEST_COMPOSE"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("PALIMPSEST_COMPOSE=%s: %v; run `go tool task deps`", p, err)
		}
		return p
	}
	dir := os.Getenv("PALIMPSEST_BIN_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err == nil {
			dir = filepath.Join(cache, "palimpsest", "bin")
		}
	}
	if dir != "" {
		p := filepath.Join(dir, "docker-compose")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return p
	}
	t.Fatalf("docker-compose not found (looked at $PALIMPSEST_COMPOSE, %s, PATH); run `go tool task deps` to build it",
		filepath.Join(dir, "docker-compose"))
	return ""
}

// composeConfig is the part of `docker-compose config --format json` the tests read: the
// model after Compose has validated the file, merged the anchors and set the defaults.
type composeConfig struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeVolume struct {
	Type     string `json:"type"` // volume, bind, tmpfs
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only"`
}

type composeService struct {
	Image       string             `json:"image"`
	Build       *struct{}          `json:"build"`
	Command     []string           `json:"command"`
	Environment map[string]*string `json:"environment"`
	Profiles    []string           `json:"profiles"`
	ReadOnly    bool               `json:"read_only"`
	User        string             `json:"user"`
	Restart     string             `json:"restart"`
	Healthcheck *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Volumes []composeVolume `json:"volumes"`
	Ports   []struct {
		Target    int    `json:"target"`
		Published string `json:"published"`
		HostIP    string `json:"host_ip"`
	} `json:"ports"`
}

// loadCompose runs the Compose CLI's own validation and returns the resolved model with
// every profile enabled. The environment is cleared of what compose.yaml interpolates, so
// the defaults are what is checked.
func loadCompose(t *testing.T) composeConfig {
	t.Helper()
	bin := composeBinary(t)
	root := repoRoot(t)
	run := func(args ...string) []byte {
		cmd := exec.Command(bin, append([]string{"--project-directory", root, "-f", filepath.Join(root, "compose.yaml")}, args...)...)
		cmd.Dir = root
		cmd.Env = composeEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, stderr.Bytes())
		}
		if stderr.Len() > 0 {
			t.Errorf("%s %s warned:\n%s", bin, strings.Join(args, " "), stderr.Bytes())
		}
		return out
	}
	run("config", "--quiet")                        // the default services alone
	run("--profile", "bridge", "config", "--quiet") // with the bridge
	var c composeConfig
	if err := json.Unmarshal(run("--profile", "bridge", "config", "--format", "json"), &c); err != nil {
		t.Fatalf("decoding `config --format json`: %v", err)
	}
	return c
}

func composeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "COMPOSE_") || strings.HasPrefix(k, "PALIMPSEST_") || strings.HasPrefix(k, "DOCKER_") ||
			slices.Contains([]string{"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MINIO_IMAGE", "MINIO_MC_IMAGE"}, k) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func TestComposeValidates(t *testing.T) {
	c := loadCompose(t)
	if c.Name != "palimpsest" {
		t.Errorf("project name %q, want palimpsest", c.Name)
	}
	for name, s := range c.Services {
		if s.Restart == "no" {
			continue // one-shot jobs (minio-init) are waited for with service_completed_successfully
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s has no health check", name)
		}
		if s.User == "root" || s.User == "0" {
			if name != "dynamodb" { // DynamoDB Local writes its file as root; it is a dev stand-in
				t.Errorf("service %s runs as root", name)
			}
		}
		for dep, d := range s.DependsOn {
			target, ok := c.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
				continue
			}
			switch d.Condition {
			case "service_healthy":
				if target.Healthcheck == nil {
					t.Errorf("%s waits for %s to be healthy, but %s has no health check", name, dep, dep)
				}
			case "service_completed_successfully":
				if target.Restart != "no" {
					t.Errorf("%s waits for %s to complete, but %s restarts", name, dep, dep)
				}
			default:
				t.Errorf("%s depends on %s with condition %q: want service_healthy (or service_completed_successfully for a job)",
					name, dep, d.Condition)
			}
			if len(target.Profiles) > 0 && !slices.Equal(target.Profiles, s.Profiles) {
				t.Errorf("%s (profiles %v) depends on %s, which only runs in profiles %v", name, s.Profiles, dep, target.Profiles)
			}
		}
		for _, v := range s.Volumes {
			if v.Type == "volume" {
				if _, ok := c.Volumes[v.Source]; !ok {
					t.Errorf("%s mounts volume %q that is not declared", name, v.Source)
				}
			}
		}
	}
	// The stateful servers keep their data in named volumes.
	for name, target := range map[string]string{
		"postgres": "/var/lib/postgresql/data", "minio": "/data", "redis": "/data",
		"kafka": "/var/lib/kafka/data", "dynamodb": "/data",
	} {
		if !hasVolume(c.Services[name], target) {
			t.Errorf("service %s keeps no named volume at %s", name, target)
		}
	}
}

func hasVolume(s composeService, target string) bool {
	return slices.ContainsFunc(s.Volumes, func(v composeVolume) bool {
		return v.Type == "volume" && v.Target == target
	})
}

func TestComposeNATSCluster(t *testing.T) {
	c := loadCompose(t)
	wantImage := "nats:" + strings.TrimPrefix(goModVersion(t, "github.com/nats-io/nats-server/v2"), "v") + "-alpine"
	var routes []string
	for i := 1; i <= natsNodes; i++ {
		routes = append(routes, fmt.Sprintf("nats://nats-%d:6222", i))
	}
	wantRoutes := "[" + strings.Join(routes, ", ") + "]"
	for i := 1; i <= natsNodes; i++ {
		name := fmt.Sprintf("nats-%d", i)
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("no service %s: the NATS cluster has %d nodes", name, natsNodes)
			continue
		}
		if s.Image != wantImage {
			t.Errorf("%s image %q, want %q (the nats-server version in go.mod, which the tests run)", name, s.Image, wantImage)
		}
		if !slices.Equal(s.Command, []string{"-c", "/etc/nats/nats-server.conf"}) {
			t.Errorf("%s command %q, want the config file", name, s.Command)
		}
		conf := slices.ContainsFunc(s.Volumes, func(v composeVolume) bool {
			return v.Type == "bind" && v.Target == "/etc/nats/nats-server.conf" && v.ReadOnly &&
				v.Source == filepath.Join(repoRoot(t), "deploy", "nats", "nats-server.conf")
		})
		if !conf {
			t.Errorf("%s does not mount deploy/nats/nats-server.conf read-only at /etc/nats/nats-server.conf", name)
		}
		if !hasVolume(s, "/data") {
			t.Errorf("%s keeps no named volume at /data", name)
		}
		env := func(k string) string {
			if v := s.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		if env("NATS_SERVER_NAME") != name {
			t.Errorf("%s NATS_SERVER_NAME=%q", name, env("NATS_SERVER_NAME"))
		}
		if env("NATS_ROUTES") != wantRoutes {
			t.Errorf("%s NATS_ROUTES=%q, want %q", name, env("NATS_ROUTES"), wantRoutes)
		}
		if env("NATS_STORE_DIR") != "/data" {
			t.Errorf("%s NATS_STORE_DIR=%q, want /data (its volume)", name, env("NATS_STORE_DIR"))
		}
		if s.Healthcheck == nil || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), "127.0.0.1:8222/healthz") {
			t.Errorf("%s health check does not ask the monitoring port's /healthz", name)
		}
	}
}

func TestComposePalimpsestServices(t *testing.T) {
	c := loadCompose(t)
	var natsURLs []string
	for i := 1; i <= natsNodes; i++ {
		natsURLs = append(natsURLs, fmt.Sprintf("nats://nats-%d:4222", i))
	}
	image := ""
	for _, want := range services {
		s, ok := c.Services[want.Name]
		if !ok {
			t.Errorf("compose.yaml has no service %s", want.Name)
			continue
		}
		t.Run(want.Name, func(t *testing.T) {
			if image == "" {
				image = s.Image
			} else if s.Image != image {
				t.Errorf("image %q; every Palimpsest service runs the one image %q", s.Image, image)
			}
			if s.Build == nil {
				t.Error("no build: `docker compose up --build` would not build the image from the Dockerfile")
			}
			if !slices.Equal(s.Command, want.Args) {
				t.Errorf("command %q, want %q", s.Command, want.Args)
			}
			if want.Profile == "" && len(s.Profiles) > 0 || want.Profile != "" && !slices.Equal(s.Profiles, []string{want.Profile}) {
				t.Errorf("profiles %v, want %q", s.Profiles, want.Profile)
			}
			var got []string
			for k := range s.Environment {
				if strings.HasPrefix(k, "PALIMPSEST_") {
					got = append(got, k)
				}
			}
			for _, p := range want.checkEnv(got) {
				t.Errorf("environment: %s", p)
			}
			env := func(k string) string {
				if v := s.Environment[k]; v != nil {
					return *v
				}
				return ""
			}
			if got := env(envNATS); got != strings.Join(natsURLs, ",") {
				t.Errorf("%s=%q, want every node: %q", envNATS, got, strings.Join(natsURLs, ","))
			}
			if got := env(envLogFormat); got != "json" {
				t.Errorf("%s=%q, want json", envLogFormat, got)
			}
			if got := env(want.AddrEnv); got != fmt.Sprintf(":%d", httpPort) {
				t.Errorf("%s=%q, want :%d", want.AddrEnv, got, httpPort)
			}
			probe := []string{"CMD", "/palimpsest", "probe", fmt.Sprintf("http://127.0.0.1:%d%s", httpPort, want.Ready)}
			if s.Healthcheck == nil || !slices.Equal(s.Healthcheck.Test, probe) {
				t.Errorf("health check %v, want %q", s.Healthcheck, probe)
			}
			if !s.ReadOnly {
				t.Error("root filesystem is writable: want read_only: true")
			}
			for i := 1; i <= natsNodes; i++ {
				if s.DependsOn[fmt.Sprintf("nats-%d", i)].Condition != "service_healthy" {
					t.Errorf("does not wait for nats-%d to be healthy", i)
				}
			}
			for env, dep := range map[string]string{envPostgres: "postgres", envRedis: "redis", envS3: "minio-init",
				envKafka: "kafka", envDynamoDB: "dynamodb"} {
				if slices.Contains(want.Env, env) && s.DependsOn[dep].Condition == "" {
					t.Errorf("uses %s but does not wait for %s", env, dep)
				}
			}
			published := len(s.Ports) > 0
			if published != want.Public {
				t.Errorf("ports %v: published=%v, want %v", s.Ports, published, want.Public)
			}
			for _, p := range s.Ports {
				if p.Target != httpPort {
					t.Errorf("publishes container port %d, want %d", p.Target, httpPort)
				}
			}
		})
	}
}
