# syntax=docker/dockerfile:1
#
# One image for every Palimpsest service: the static `palimpsest` binary on distroless/static
# (CA certificates, tzdata, /etc/passwd with the nonroot user; no shell, no package manager).
# The subcommand picks the service:
#
#   docker run --rm -p 8080:8080 palimpsest serve          # everything, embedded NATS
#   docker run --rm palimpsest projector --nats nats://nats:4222 --postgres postgres://...
#
# Container health checks use the binary itself: `palimpsest probe http://127.0.0.1:8080/readyz`.
# Build: docker build -t palimpsest . (deploy/ tests parse this file; see docs/operations.md)

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags "-s -w" -o /out/palimpsest ./cmd/palimpsest
# The embedded stores' directory (serve --data), owned by nonroot so a fresh volume is writable.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/palimpsest /palimpsest
COPY --from=build --chown=65532:65532 /out/data /data
ENV PALIMPSEST_DATA=/data PALIMPSEST_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
VOLUME ["/data"]
ENTRYPOINT ["/palimpsest"]
CMD ["serve"]
