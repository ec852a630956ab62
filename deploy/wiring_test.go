package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// This file is the one place that says how the deployment runs each Palimpsest service:
// which subcommand, configured by which environment variables, on which port. compose.yaml,
// the k8s manifests and the end-to-end test are checked against it, so when a subcommand's
// flags change, change them here first and the failing tests name every file to follow.

// The environment variables the services read: each is its flag's name, upper-cased, with
// the PALIMPSEST_ prefix (--nats is PALIMPSEST_NATS).
const (
	envNATS      = "PALIMPSEST_NATS"       // NATS URLs, comma-separated
	envAddr      = "PALIMPSEST_ADDR"       // host:port of the service's HTTP listener
	envPostgres  = "PALIMPSEST_POSTGRES"   // PostgreSQL DSN (a secret: it holds the password)
	envS3        = "PALIMPSEST_S3"         // S3 URL with credentials and bucket (a secret)
	envRedis     = "PALIMPSEST_REDIS"      // Redis URL (a secret when it has a password)
	envKafka     = "PALIMPSEST_KAFKA"      // Kafka seed brokers, comma-separated
	envDynamoDB  = "PALIMPSEST_DYNAMODB"   // DynamoDB endpoint URL (empty: AWS's)
	envLogFormat = "PALIMPSEST_LOG_FORMAT" // "json" in every deployment
)

// httpPort is the port every service's HTTP listener has in a container: the gateway's
// WebSocket and editor, the read API, and everyone's /healthz, /readyz and /metrics.
const httpPort = 8080

// service is one Palimpsest service as the deployment runs it.
type service struct {
	Name   string   // compose service, Kubernetes Deployment and Service
	Args   []string // the subcommand: the container's command (compose) or args (Kubernetes)
	Env    []string // the PALIMPSEST_* variables it is given
	Public bool     // reachable from outside the cluster (Ingress); the others are internal
	// Profile is the compose profile the service needs ("" = always on).
	Profile string
}

// services are the deployment's Palimpsest services. The gateway role is `serve` on an
// external NATS cluster (there is no separate gateway subcommand).
var services = []service{
	{Name: "gateway", Args: []string{"serve"}, Public: true,
		Env: []string{envNATS, envAddr, envLogFormat}},
	{Name: "projector", Args: []string{"projector"},
		Env: []string{envNATS, envAddr, envLogFormat, envPostgres, envS3, envRedis}},
	{Name: "read", Args: []string{"read"}, Public: true,
		Env: []string{envNATS, envAddr, envLogFormat, envPostgres, envS3, envRedis}},
	{Name: "bridge", Args: []string{"bridge", "run"}, Profile: "bridge",
		Env: []string{envNATS, envAddr, envLogFormat, envKafka, envDynamoDB}},
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
