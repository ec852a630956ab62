#!/usr/bin/env bash
# deps.sh installs the servers that the test harness (internal/harness) starts:
# the PostgreSQL server, Redis and MinIO. It is idempotent: what is already there is
# left alone, so a second run takes seconds. It prints one line for each thing it checked.
#
#   PostgreSQL  Debian package postgresql (initdb under /usr/lib/postgresql/*/bin), and a
#               'postgres' system user, because initdb and postgres refuse to run as root.
#   Redis       Debian package redis-server.
#   MinIO       built once with 'go install' (pinned below, ~4 minutes cold) into
#               PALIMPSEST_BIN_DIR, default ${XDG_CACHE_HOME:-$HOME/.cache}/palimpsest/bin,
#               outside the work tree so fresh clones on the same machine share it.
#               The harness looks there first, then on PATH.
#   compose     docker-compose (Compose CLI v5), built once with go build into PALIMPSEST_BIN_DIR
#               and linked as a Docker CLI plugin; the tests validate compose.yaml with it.
#   dynalite    npm package (DynamoDB-compatible, Node.js), pinned below, installed into
#               PALIMPSEST_NODE_DIR, default ${XDG_CACHE_HOME:-$HOME/.cache}/palimpsest/node.
#   chromium    Debian package chromium (/usr/bin/chromium), for the browser editor's tests.
#   web         web/node_modules by npm ci from web/package-lock.json, when missing or stale.
#
# apt-get update runs only when a package is missing. Needs root (or sudo) for apt-get
# and useradd; without them it says what to install and fails.
set -euo pipefail

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
BIN_DIR=${PALIMPSEST_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/palimpsest/bin}

start=$SECONDS
say() { printf 'deps: %s\n' "$*"; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		say "need root to run: $*" >&2
		exit 1
	fi
}

# pg_bin_dir prints the bin directory of the highest PostgreSQL major version installed
# the Debian way, or nothing.
pg_bin_dir() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && [ -x "$d/postgres" ] && printf '%s\n' "$d"
	done | sort -t/ -k5,5n | tail -n1
}

missing=()
if [ -n "$(pg_bin_dir)" ]; then
	say "postgresql: ok ($(pg_bin_dir))"
else
	missing+=(postgresql)
fi
if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
	say "redis-server: ok ($(command -v redis-server || echo /usr/bin/redis-server))"
else
	missing+=(redis-server)
fi

if [ ${#missing[@]} -gt 0 ]; then
	if ! command -v apt-get >/dev/null 2>&1; then
		say "missing ${missing[*]} and no apt-get here: install them with your package manager" >&2
		exit 1
	fi
	say "installing ${missing[*]} with apt-get"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	[ -n "$(pg_bin_dir)" ] || { say "postgresql installed but no initdb under /usr/lib/postgresql/*/bin" >&2; exit 1; }
	command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] ||
		{ say "redis-server installed but not found" >&2; exit 1; }
	say "installed ${missing[*]}"
fi

# initdb and postgres refuse to run as root; the harness runs them as this user when it is root.
if [ "$(id -u)" -eq 0 ]; then
	if id -u postgres >/dev/null 2>&1; then
		say "postgres user: ok"
	else
		useradd -r -M -d /nonexistent -s /usr/sbin/nologin postgres
		say "postgres user: created"
	fi
fi

minio_bin=$BIN_DIR/minio
stamp=$BIN_DIR/minio.version
if [ -x "$minio_bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MINIO_VERSION" ]; then
	say "minio: ok ($minio_bin)"
else
	command -v go >/dev/null 2>&1 || { say "go not found: needed to build minio" >&2; exit 1; }
	say "minio: building $MINIO_MODULE@$MINIO_VERSION into $BIN_DIR (takes a few minutes, once)"
	mkdir -p "$BIN_DIR"
	tmp=$(mktemp -d "$BIN_DIR/.build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	t0=$SECONDS
	# Outside the work tree so the project's go.mod and GOFLAGS play no part.
	(cd "$tmp" && env -u GOFLAGS GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$tmp" \
		go install -trimpath "$MINIO_MODULE@$MINIO_VERSION")
	mv -f "$tmp/minio" "$minio_bin"
	printf '%s\n' "$MINIO_VERSION" >"$stamp"
	say "minio: built in $((SECONDS - t0))s ($minio_bin)"
fi

# dynalite: a DynamoDB-compatible server on Node.js, for the Kafka/DynamoDB bridge's tests
# (internal/harness/dynalite.go). npm installs the pinned version into PALIMPSEST_NODE_DIR,
# default ${XDG_CACHE_HOME:-$HOME/.cache}/palimpsest/node, outside the work tree; a second
# run only reads its package.json. Needs Node.js 20+ and npm, and the npm registry.
DYNALITE_VERSION=4.0.0
NODE_DIR=${PALIMPSEST_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/palimpsest/node}
dynalite_pkg=$NODE_DIR/node_modules/dynalite/package.json
if [ -f "$dynalite_pkg" ] && grep -q "\"version\": *\"$DYNALITE_VERSION\"" "$dynalite_pkg"; then
	say "dynalite: ok ($NODE_DIR/node_modules/dynalite)"
else
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
		{ say "node and npm not found: install Node.js 20 or later to run dynalite" >&2; exit 1; }
	say "dynalite: installing dynalite@$DYNALITE_VERSION into $NODE_DIR with npm"
	mkdir -p "$NODE_DIR"
	[ -f "$NODE_DIR/package.json" ] || printf '{"name":"palimpsest-test-servers","private":true}\n' >"$NODE_DIR/package.json"
	(cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error --save-exact "dynalite@$DYNALITE_VERSION" >/dev/null)
	say "dynalite: installed"
fi

# docker compose: the Compose CLI, built once with 'go build' (pinned below, a few minutes cold)
# into BIN_DIR as docker-compose, and linked as the Docker CLI plugin
# ~/.docker/cli-plugins/docker-compose unless something else is there already. The tests run
# it standalone ('docker-compose config' validates compose.yaml and needs no Docker engine);
# they look for it in PALIMPSEST_COMPOSE, then BIN_DIR, then on PATH.
COMPOSE_MODULE=github.com/docker/compose/v5
COMPOSE_VERSION=v5.5.1
compose_bin=$BIN_DIR/docker-compose
compose_stamp=$BIN_DIR/docker-compose.version
if [ -x "$compose_bin" ] && [ "$(cat "$compose_stamp" 2>/dev/null)" = "$COMPOSE_VERSION" ]; then
	say "docker-compose: ok ($compose_bin)"
else
	command -v go >/dev/null 2>&1 || { say "go not found: needed to build docker-compose" >&2; exit 1; }
	say "docker-compose: building $COMPOSE_MODULE@$COMPOSE_VERSION into $BIN_DIR (takes a few minutes, once)"
	mkdir -p "$BIN_DIR"
	ctmp=$(mktemp -d "$BIN_DIR/.build.XXXXXX")
	trap 'rm -rf "${tmp:-}" "${ctmp:-}"' EXIT
	t0=$SECONDS
	# Its go.mod has exclude directives, so 'go install module@version' refuses it: build the
	# downloaded module as the main module instead, outside the work tree.
	(cd "$ctmp" && export GOFLAGS= GOTOOLCHAIN=local CGO_ENABLED=0 &&
		src=$(go mod download -json "$COMPOSE_MODULE@$COMPOSE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') &&
		cp -R "$src" "$ctmp/src" && chmod -R u+w "$ctmp/src" && cd "$ctmp/src" &&
		go build -trimpath -ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" \
			-o "$ctmp/docker-compose" ./cmd)
	mv -f "$ctmp/docker-compose" "$compose_bin"
	printf '%s\n' "$COMPOSE_VERSION" >"$compose_stamp"
	say "docker-compose: built in $((SECONDS - t0))s ($compose_bin)"
fi
plugin_dir=$HOME/.docker/cli-plugins
if [ ! -e "$plugin_dir/docker-compose" ] || [ -L "$plugin_dir/docker-compose" ]; then
	mkdir -p "$plugin_dir" && ln -sfn "$compose_bin" "$plugin_dir/docker-compose"
	say "docker-compose: CLI plugin linked ($plugin_dir/docker-compose)"
else
	say "docker-compose: CLI plugin already at $plugin_dir/docker-compose, left alone"
fi

# The browser editor's tests (web/e2e_test.go): Debian's Chromium, driven by Playwright
# (playwright-core, no browser download), and web/node_modules from the committed lockfile.
# npm ci runs when node_modules is missing or was installed from another package-lock.json.
if [ -x /usr/bin/chromium ]; then
	say "chromium: ok (/usr/bin/chromium)"
else
	command -v apt-get >/dev/null 2>&1 || { say "no /usr/bin/chromium and no apt-get: install Chromium" >&2; exit 1; }
	say "chromium: installing with apt-get"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	say "chromium: installed"
fi
web_dir=$(cd "$(dirname "$0")/../web" && pwd)
web_stamp=$web_dir/node_modules/.palimpsest-lock.sha256
web_lock=$(sha256sum "$web_dir/package-lock.json" | cut -d' ' -f1)
if [ -d "$web_dir/node_modules" ] && [ "$(cat "$web_stamp" 2>/dev/null)" = "$web_lock" ]; then
	say "web/node_modules: ok"
else
	command -v npm >/dev/null 2>&1 || { say "npm not found: install Node.js 20.19 or later for web/" >&2; exit 1; }
	say "web/node_modules: npm ci"
	# A registry mirror without the other platforms' optional packages (rollup's, esbuild's)
	# makes npm ci refuse the lockfile as out of sync; npm install --no-save then installs
	# the same locked versions and leaves package-lock.json alone.
	(cd "$web_dir" && { npm ci --no-audit --no-fund --loglevel=silent >/dev/null 2>&1 ||
		{ say "web/node_modules: npm ci refused the lockfile, installing it with npm install --no-save" &&
			npm install --no-save --no-audit --no-fund --loglevel=error >/dev/null; }; })
	printf '%s\n' "$web_lock" >"$web_stamp"
	say "web/node_modules: installed"
fi

say "done in $((SECONDS - start))s"
