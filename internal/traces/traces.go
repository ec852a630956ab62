// Package traces loads the real editing histories under testdata/traces: keystroke-by-keystroke
// recordings of people writing a paper, a blog post and a specification (see the README there
// for their source and licence, CC BY 4.0). Benchmarks and tests replay them through the CRDT
// and through the plain-text baseline.
//
//	tr, err := traces.Open("automerge-paper")
//	err = tr.Replay(editor) // every patch, in order; the editor then holds tr.EndContent
package traces

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// names are the traces under testdata/traces, smallest history first.
var names = []string{"json-crdt-patch", "seph-blog1", "automerge-paper"}

// All returns the names of the traces under testdata/traces, in a fixed order (smallest first).
// The caller may modify the returned slice.
func All() []string { return append([]string(nil), names...) }

// Patch is one edit: delete Del code points at Pos, then insert Ins at Pos. Pos and Del count
// Unicode code points.
type Patch struct {
	Pos, Del int
	Ins      string
}

// Trace is one editing history, flattened to its patches in order.
type Trace struct {
	Name string
	// Txns is the number of transactions (groups of patches) in the recording.
	Txns int
	// Patches applied in order to the empty text give EndContent. A non-empty start content is
	// the first patch, an insert at 0.
	Patches    []Patch
	EndContent string
}

// Editor is what a trace replays into: a text that counts positions in code points.
type Editor interface {
	Insert(pos int, text string) error
	Delete(pos, n int) error
}

// Replay applies every patch of t to ed, which must start empty: the delete, if any, then the
// insert, if any. It stops at the first error, wrapped with the patch's index.
func (t *Trace) Replay(ed Editor) error {
	for i, p := range t.Patches {
		if p.Del > 0 {
			if err := ed.Delete(p.Pos, p.Del); err != nil {
				return fmt.Errorf("trace %s patch %d: delete %d at %d: %w", t.Name, i, p.Del, p.Pos, err)
			}
		}
		if p.Ins != "" {
			if err := ed.Insert(p.Pos, p.Ins); err != nil {
				return fmt.Errorf("trace %s patch %d: insert %d code points at %d: %w",
					t.Name, i, utf8.RuneCountInString(p.Ins), p.Pos, err)
			}
		}
	}
	return nil
}

// ErrNotFound is returned by Dir when no enclosing module has a testdata/traces folder.
var ErrNotFound = errors.New("traces: testdata/traces not found")

// Dir returns the testdata/traces folder of the module that encloses the working directory: it
// walks up from the working directory to the first folder holding go.mod. It works from any
// package directory (go test) and from the repository root (go run).
func Dir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("traces: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "testdata", "traces")
			if st, err := os.Stat(d); err != nil || !st.IsDir() {
				return "", fmt.Errorf("%w: module root %s has none", ErrNotFound, dir)
			}
			return d, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod above the working directory", ErrNotFound)
		}
		dir = parent
	}
}

// Open loads the trace called name (one of All) from Dir.
func Open(name string) (*Trace, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	return Load(filepath.Join(dir, name+".json.gz"))
}

// Load reads a gzip'd JSON trace file. It checks every patch against the length of the text so
// far, so a trace that Load accepts replays without a range error; a malformed file gets an
// error naming the file and the transaction.
func Load(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("traces: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("traces: %s: %w", path, err)
	}
	var raw struct {
		StartContent string `json:"startContent"`
		EndContent   string `json:"endContent"`
		Txns         []struct {
			Patches []Patch `json:"patches"`
		} `json:"txns"`
	}
	if err := json.NewDecoder(zr).Decode(&raw); err != nil {
		return nil, fmt.Errorf("traces: %s: %w", path, err)
	}
	t := &Trace{
		Name:       strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".gz"), ".json"),
		Txns:       len(raw.Txns),
		EndContent: raw.EndContent,
	}
	if raw.StartContent != "" {
		t.Patches = append(t.Patches, Patch{Ins: raw.StartContent})
	}
	length := utf8.RuneCountInString(raw.StartContent)
	for i, txn := range raw.Txns {
		for _, p := range txn.Patches {
			if p.Pos > length || p.Del > length-p.Pos {
				return nil, fmt.Errorf("traces: %s txn %d: patch [%d, %d] outside text of %d code points",
					path, i, p.Pos, p.Del, length)
			}
			length += utf8.RuneCountInString(p.Ins) - p.Del
			t.Patches = append(t.Patches, p)
		}
	}
	return t, nil
}

// UnmarshalJSON reads a patch in the traces' form, [position, deleteCount, "inserted text"],
// rejecting negative and fractional numbers.
func (p *Patch) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("patch %s: %w", b, err)
	}
	if len(raw) != 3 {
		return fmt.Errorf("patch %s: want [position, deleteCount, text], got %d elements", b, len(raw))
	}
	var pos, del int
	if err := json.Unmarshal(raw[0], &pos); err != nil {
		return fmt.Errorf("patch %s: position: %w", b, err)
	}
	if err := json.Unmarshal(raw[1], &del); err != nil {
		return fmt.Errorf("patch %s: delete count: %w", b, err)
	}
	if err := json.Unmarshal(raw[2], &p.Ins); err != nil {
		return fmt.Errorf("patch %s: text: %w", b, err)
	}
	if pos < 0 || del < 0 {
		return fmt.Errorf("patch %s: negative position or delete count", b)
	}
	p.Pos, p.Del = pos, del
	return nil
}
