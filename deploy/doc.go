// Package deploy holds what runs Palimpsest outside a developer's `palimpsest serve`, and the
// tests that keep it honest. It has no code of its own; its files are:
//
//	deploy/nats/nats-server.conf   the NATS cluster node configuration (compose and tests)
//	../Dockerfile, ../.dockerignore the one image of every service
//	../compose.yaml                the whole system on one machine
//	../k8s/                        kustomize base and overlays dev and prod
//
// The tests (go test ./deploy) check, without a Docker engine or a Kubernetes cluster:
//
//   - compose.yaml with the Compose CLI's own `config` (built by `go tool task deps`), and its
//     wiring: every service's command, PALIMPSEST_* variables, health check and dependencies;
//   - the Dockerfile: multi-stage, static (CGO_ENABLED=0) build, non-root distroless final
//     image, and a .dockerignore that keeps every file the build reads;
//   - the kustomize overlays, rendered in-process (krusty) and strictly decoded into the
//     Kubernetes API types, plus the invariants of docs/adr/0007-deployment.md;
//   - end to end: the binaries wired the way compose wires them (three nats-server processes
//     with nats-server.conf, PostgreSQL, MinIO, Redis, one process per service), with one
//     NATS node killed mid-edit.
//
// The subcommands, their environment variables and ports are declared once, in
// wiring_test.go; compose.yaml, k8s/ and the end-to-end test are checked against it.
package deploy
