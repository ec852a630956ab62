package traces

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// runes is the simplest possible Editor: a slice of code points.
type runes []rune

func (r *runes) Insert(pos int, text string) error {
	if pos < 0 || pos > len(*r) {
		return errors.New("insert out of range")
	}
	*r = slices.Insert(*r, pos, []rune(text)...)
	return nil
}

func (r *runes) Delete(pos, n int) error {
	if pos < 0 || n < 0 || pos+n > len(*r) {
		return errors.New("delete out of range")
	}
	*r = slices.Delete(*r, pos, pos+n)
	return nil
}

// The figures in testdata/traces/README.md.
var want = map[string]struct{ txns, inserted, deleted, final int }{
	"automerge-paper": {259778, 182315, 77463, 104852},
	"seph-blog1":      {137154, 212489, 155720, 56769},
	"json-crdt-patch": {18639, 85334, 36032, 49302},
}

func TestReplayGivesEndContent(t *testing.T) {
	for _, name := range All() {
		t.Run(name, func(t *testing.T) {
			tr, err := Open(name)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Name != name {
				t.Errorf("Name = %q, want %q", tr.Name, name)
			}
			var text runes
			if err := tr.Replay(&text); err != nil {
				t.Fatal(err)
			}
			if got := string(text); got != tr.EndContent {
				t.Fatalf("replay gives %d code points, endContent has %d; first difference at %d",
					len(text), utf8.RuneCountInString(tr.EndContent), firstDiff([]rune(got), []rune(tr.EndContent)))
			}
			inserted, deleted := 0, 0
			for _, p := range tr.Patches {
				inserted += utf8.RuneCountInString(p.Ins)
				deleted += p.Del
			}
			w, ok := want[name]
			if !ok {
				t.Fatalf("no README figures for %s", name)
			}
			got := struct{ txns, inserted, deleted, final int }{tr.Txns, inserted, deleted, len(text)}
			if got != w {
				t.Errorf("txns, inserted, deleted, final = %v, README says %v", got, w)
			}
		})
	}
}

// json-crdt-patch ends with non-ASCII text (ø), so its replay above only matches if positions
// count code points. This test makes sure the data keeps that check's teeth.
func TestEndContentHasNonASCII(t *testing.T) {
	tr, err := Open("json-crdt-patch")
	if err != nil {
		t.Fatal(err)
	}
	if utf8.RuneCountInString(tr.EndContent) == len(tr.EndContent) {
		t.Fatal("json-crdt-patch endContent is all ASCII: the code-point check has no teeth")
	}
}

func TestAllMatchesTheFolder(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, f := range files {
		onDisk = append(onDisk, strings.TrimSuffix(filepath.Base(f), ".json.gz"))
	}
	all := All()
	slices.Sort(onDisk)
	slices.Sort(all)
	if !slices.Equal(onDisk, all) {
		t.Fatalf("testdata/traces holds %v, All lists %v", onDisk, all)
	}
}

func TestLoadRejectsBadInput(t *testing.T) {
	cases := []struct {
		name, json, wantErr string
	}{
		{"not json", `{`, "unexpected EOF"},
		{"patch too short", `{"txns":[{"patches":[[0,0]]}]}`, "got 2 elements"},
		{"negative position", `{"txns":[{"patches":[[-1,0,"a"]]}]}`, "negative"},
		{"fractional count", `{"txns":[{"patches":[[0,0.5,"a"]]}]}`, "delete count"},
		{"text not a string", `{"txns":[{"patches":[[0,0,7]]}]}`, "text"},
		{"insert past end", `{"txns":[{"patches":[[0,0,"ab"]]},{"patches":[[3,0,"c"]]}]}`, "txn 1"},
		{"delete past end", `{"startContent":"héé","txns":[{"patches":[[1,3,""]]}]}`, "outside text of 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeTrace(t, c.json))
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("Load error = %v, want one containing %q", err, c.wantErr)
			}
		})
	}
	t.Run("not gzip", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "plain.json.gz")
		if err := os.WriteFile(path, []byte(`{"startContent":"", "txns":[]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); !errors.Is(err, gzip.ErrHeader) {
			t.Fatalf("Load error = %v, want gzip.ErrHeader", err)
		}
	})
}

func TestLoadFoldsStartContentIntoFirstPatch(t *testing.T) {
	tr, err := Load(writeTrace(t, `{"startContent":"héllo","endContent":"hé!","txns":[{"patches":[[2,3,"!"]]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Name != "t" || tr.Txns != 1 {
		t.Errorf("Name, Txns = %q, %d; want \"t\", 1", tr.Name, tr.Txns)
	}
	var text runes
	if err := tr.Replay(&text); err != nil {
		t.Fatal(err)
	}
	if string(text) != tr.EndContent {
		t.Fatalf("replay = %q, want %q", string(text), tr.EndContent)
	}
}

func TestReplayWrapsEditorErrors(t *testing.T) {
	tr := &Trace{Name: "x", Patches: []Patch{{Pos: 0, Ins: "ab"}, {Pos: 5, Del: 1}}}
	var text runes
	err := tr.Replay(&text)
	if err == nil || !strings.Contains(err.Error(), "trace x patch 1: delete 1 at 5") {
		t.Fatalf("Replay error = %v, want it to name patch 1", err)
	}
}

func writeTrace(t *testing.T, json string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(json)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "t.json.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func firstDiff(a, b []rune) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
