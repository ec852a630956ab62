// Package srchash names the exact sources of the built editor (web/dist) by
// one hash: the editor's own files and every Go file of this module compiled
// into its WebAssembly core (crdt, schemas, ...). npm run build records it in
// dist/manifest.json; a Go test recomputes it, so a commit that changes a
// source without rebuilding dist fails the tests.
package srchash

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// webFiles are the editor's sources, relative to web/; directories are walked.
var webFiles = []string{"index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "scripts/build.mjs", "src"}

// WASMPackage is the Go package built into dist/palimpsest.wasm.
const WASMPackage = "./web/wasm"

// Files returns the sources of web/dist, relative to root (the module root,
// with forward slashes), sorted.
func Files(root string) ([]string, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("srchash: %w", err)
	}
	var files []string
	for _, f := range webFiles {
		err := filepath.WalkDir(filepath.Join(root, "web", f), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("srchash: %w", err)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if .Module}}{{if .Module.Main}}{{.Dir}}{{range .GoFiles}}|{{.}}{{end}}{{range .EmbedFiles}}|{{.}}{{end}}{{end}}{{end}}`, WASMPackage)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("srchash: go list -deps %s: %v: %s", WASMPackage, err, stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		parts := strings.Split(line, "|")
		for _, name := range parts[1:] {
			rel, err := filepath.Rel(root, filepath.Join(parts[0], name))
			if err != nil {
				return nil, fmt.Errorf("srchash: %w", err)
			}
			files = append(files, filepath.ToSlash(rel))
		}
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

// Hash returns the hex SHA-256 of the sources: per file, in Files' order, its
// path, a newline, the hex SHA-256 of its content and a newline.
func Hash(root string) (string, error) {
	files, err := Files(root)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return "", fmt.Errorf("srchash: %w", err)
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "%s\n%s\n", f, hex.EncodeToString(sum[:]))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
