package web_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"slices"
	"testing"

	"github.com/palimpsest-editor/palimpsest/web"
	"github.com/palimpsest-editor/palimpsest/web/internal/srchash"
)

type manifest struct {
	Sources string            `json:"sources"`
	Files   map[string]string `json:"files"`
}

func readManifest(t *testing.T) manifest {
	t.Helper()
	b, err := fs.ReadFile(web.Dist(), "manifest.json")
	if err != nil {
		t.Fatalf("web/dist has no manifest.json: run `npm run build` in web/: %v", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("web/dist/manifest.json: %v", err)
	}
	return m
}

// TestDistFresh fails when a source of the editor (web/src, web/wasm, or a
// Go package compiled into the WebAssembly core, like crdt and schemas)
// changed since web/dist was built.
func TestDistFresh(t *testing.T) {
	m := readManifest(t)
	h, err := srchash.Hash("..")
	if err != nil {
		t.Fatal(err)
	}
	if h != m.Sources {
		files, _ := srchash.Files("..")
		t.Fatalf("web/dist is stale: its sources hash to %s, dist/manifest.json says %s.\n"+
			"Rebuild it with `npm ci && npm run build` in web/ and commit web/dist.\nThe sources are: %v", h, m.Sources, files)
	}
}

// TestDistComplete checks that the embedded files are exactly the built ones.
func TestDistComplete(t *testing.T) {
	m := readManifest(t)
	var got []string
	err := fs.WalkDir(web.Dist(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == "manifest.json" {
			return err
		}
		got = append(got, p)
		b, err := fs.ReadFile(web.Dist(), p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if want, ok := m.Files[p]; !ok {
			t.Errorf("web/dist/%s is not in the manifest", p)
		} else if hex.EncodeToString(sum[:]) != want {
			t.Errorf("web/dist/%s differs from the built file", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range m.Files {
		if !slices.Contains(got, p) {
			t.Errorf("web/dist/%s is missing", p)
		}
	}
	for _, need := range []string{"index.html", "palimpsest.wasm", "wasm_exec.js", "sw.js"} {
		if _, ok := m.Files[need]; !ok {
			t.Errorf("web/dist/%s was not built", need)
		}
	}
}
