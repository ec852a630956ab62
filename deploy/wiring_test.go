package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// This file is the one place that says how the deployment runs each Palimpsest service:
// which subcommand, configured by which environment variables, on which port. compose.yaml,
// the k8s manifests and the end-to-end test are checked against it, so when a subcommand's
// flags change, change them here first and the failing tests name every file to follow.

// The environment variables the services read: each is its flag's name, upper-cased, with
// the PALIMPSEST_ prefix and '_' for '-' (--metrics-addr is PALIMPSEST_METRICS_ADDR).
const (
	envNATS        = "PALIMPSEST_NATS"         // NATS URLs, comma-separated
	envAddr        = "PALIMPSEST_ADDR"         // host:port of the service's HTTP listener
	envMetricsAddr = "PALIMPSEST_METRICS_ADDR" // host:port of the projector's /metrics
	envData        = "PALIMPSEST_DATA"         // the development key's directory (and embedded stores)
	envJWKSURL     = "PALIMPSEST_JWKS_URL"     // the identity provider's JWK Set (empty: dev key)
	envPostgres    = "PALIMPSEST_POSTGRES"     // PostgreSQL URL (a secret: it holds the password)
	envS3          = "PALIMPSEST_S3"           // http(s)://KEY:SECRET@host:port/bucket (a secret)
	envRedis       = "PALIMPSEST_REDIS"        // redis://host:port/db (a secret when it has a password)
	envKafka       = "PALIMPSEST_KAFKA"        // Kafka seed brokers, comma-separated
	envDynamoDB    = "PALIMPSEST_DYNAMODB"     // DynamoDB endpoint URL (empty: AWS's)
	envLogFormat   = "PALIMPSEST_LOG_FORMAT"   // "json" in every deployment
)

// secretEnv are the variables that carry credentials: Kubernetes takes them from Secrets
// (secretKeyRef), never from a literal value.
var secretEnv = []string{envPostgres, envS3, envRedis}

// httpPort is the port every service's HTTP listener has in a container: the gateway's
// WebSocket and editor, the read API, and everyone's probes and /metrics.
const httpPort = 8080

// service is one Palimpsest service as the deployment runs it.
type service struct {
	Name string   // compose service, Kubernetes Deployment and Service
	Args []string // the subcommand: the container's command (compose) or args (Kubernetes)
	// AddrEnv names the variable of its HTTP listener, set to ":8080" everywhere.
	AddrEnv string
	// Ready and Live are the paths of its readiness and liveness probes.
	Ready, Live string
	Env         []string // PALIMPSEST_* variables every deployment gives it, besides AddrEnv
	Optional    []string // PALIMPSEST_* variables a deployment may also give it
	Public      bool     // reachable from outside (Ingress, published ports); the others are internal
	Profile     string   // the compose profile it needs ("" = always on)
}

// services are the deployment's Palimpsest services. The gateway role is `serve` on an
// external NATS cluster: there is no separate gateway subcommand. The projector serves only
// /metrics (on --metrics-addr), so its probes ask /metrics.
var services = []service{
	{Name: "gateway", Args: []string{"serve"}, AddrEnv: envAddr, Ready: "/readyz", Live: "/healthz", Public: true,
		Env: []string{envNATS, envLogFormat}, Optional: []string{envJWKSURL, envData}},
	{Name: "projector", Args: []string{"projector"}, AddrEnv: envMetricsAddr, Ready: "/metrics", Live: "/metrics",
		Env: []string{envNATS, envLogFormat, envPostgres, envS3, envRedis}},
	{Name: "read", Args: []string{"read"}, AddrEnv: envAddr, Ready: "/readyz", Live: "/healthz", Public: true,
		Env: []string{envNATS, envLogFormat, envPostgres, envS3, envRedis}, Optional: []string{envJWKSURL, envData}},
	{Name: "bridge", Args: []string{"bridge", "run"}, AddrEnv: envAddr, Ready: "/readyz", Live: "/healthz", Profile: "bridge",
		Env: []string{envNATS, envLogFormat, envKafka, envDynamoDB}},
}

// checkEnv reports what is wrong with the PALIMPSEST_* variables a deployment gives s.
func (s service) checkEnv(got []string) []string {
	var problems []string
	for _, want := range append([]string{s.AddrEnv}, s.Env...) {
		if !slices.Contains(got, want) {
			problems = append(problems, "missing "+want)
		}
	}
	for _, g := range got {
		if strings.HasPrefix(g, "PALIMPSEST_") && g != s.AddrEnv && !slices.Contains(s.Env, g) && !slices.Contains(s.Optional, g) {
			problems = append(problems, "unexpected "+g+" (not in wiring_test.go)")
		}
	}
	return problems
}

// natsNodes is the size of the NATS cluster in every deployment (R3 streams).
const natsNodes = 3

// repoRoot returns the module's root directory: go test runs in deploy/, one level below.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found above %s: %v", wd, err)
	}
	return root
}

// goModVersion returns the version go.mod requires of module path.
func goModVersion(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == path {
			return f[1]
		}
	}
	t.Fatalf("go.mod requires no %s", path)
	return ""
}
