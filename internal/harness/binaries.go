package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
)

// ErrNotInstalled is wrapped by every error about a server binary or system user that is
// missing. The error's text says to run `go tool task deps`.
var ErrNotInstalled = errors.New("not installed")

func notInstalled(what, lookedIn string) error {
	return fmt.Errorf("harness: %s %w (looked in %s); run `go tool task deps` to install it",
		what, ErrNotInstalled, lookedIn)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// postgresBinDir returns the directory holding initdb and postgres.
func postgresBinDir() (string, error) {
	ok := func(dir string) bool {
		return isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres"))
	}
	if dir := os.Getenv("PALIMPSEST_POSTGRES_BIN"); dir != "" {
		if ok(dir) {
			return dir, nil
		}
		return "", notInstalled("PostgreSQL server", "$PALIMPSEST_POSTGRES_BIN="+dir)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Highest major version first: sort by the number in /usr/lib/postgresql/N/bin.
	major := func(dir string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		return n
	}
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) })
	for _, dir := range dirs {
		if ok(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && ok(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	return "", notInstalled("PostgreSQL server (initdb, postgres)", "$PALIMPSEST_POSTGRES_BIN, /usr/lib/postgresql/*/bin, PATH")
}

// postgresCredential returns the credential to run initdb and postgres with: nil when
// this process is not root, else the "postgres" user's, because both refuse to run as root.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, notInstalled(`system user "postgres" (initdb refuses to run as root)`, "the user database")
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("harness: user postgres has uid %q gid %q, not numbers", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func redisBinary() (string, error) {
	if p := os.Getenv("PALIMPSEST_REDIS_SERVER"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", notInstalled("redis-server", "$PALIMPSEST_REDIS_SERVER="+p)
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	if isExecutable("/usr/bin/redis-server") {
		return "/usr/bin/redis-server", nil
	}
	return "", notInstalled("redis-server", "$PALIMPSEST_REDIS_SERVER, PATH, /usr/bin")
}

// BinDir is where scripts/deps.sh puts binaries it builds (MinIO):
// $PALIMPSEST_BIN_DIR, else os.UserCacheDir()/palimpsest/bin.
func BinDir() string {
	if d := os.Getenv("PALIMPSEST_BIN_DIR"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "palimpsest", "bin")
}

func minioBinary() (string, error) {
	if p := os.Getenv("PALIMPSEST_MINIO"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", notInstalled("minio", "$PALIMPSEST_MINIO="+p)
	}
	if dir := BinDir(); dir != "" && isExecutable(filepath.Join(dir, "minio")) {
		return filepath.Join(dir, "minio"), nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	return "", notInstalled("minio", "$PALIMPSEST_MINIO, "+BinDir()+", PATH")
}
