package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/palimpsest-editor/palimpsest/internal/traces"
)

func TestBenchSmallestTrace(t *testing.T) {
	var out bytes.Buffer
	if err := runBench(&out, benchConfig{trace: "json-crdt", count: 1}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	var header, row string
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "trace":
			header = l
		case len(f) > 0 && f[0] == "json-crdt-patch":
			row = l
		case len(f) > 0 && (f[0] == "seph-blog1" || f[0] == "automerge-paper"):
			t.Fatalf("--trace json-crdt ran %s too", f[0])
		}
	}
	if header == "" || row == "" {
		t.Fatalf("no header or no json-crdt-patch row in:\n%s", out.String())
	}
	// The ops column: one insert op per patch that inserts, one delete op per patch that deletes.
	tr, err := traces.Open("json-crdt-patch")
	if err != nil {
		t.Fatal(err)
	}
	wantOps := 0
	for _, p := range tr.Patches {
		if p.Ins != "" {
			wantOps++
		}
		if p.Del > 0 {
			wantOps++
		}
	}
	if got := strings.Fields(row)[1]; got != strconv.Itoa(wantOps) {
		t.Fatalf("ops column = %s, want %d", got, wantOps)
	}
}

func TestMeasureChecksTheFinalText(t *testing.T) {
	tr := &traces.Trace{
		Name:       "tiny",
		Patches:    []traces.Patch{{Ins: "hello"}, {Pos: 1, Del: 3, Ins: "é"}},
		EndContent: "héo",
	}
	if _, err := measure(tr, 1); err != nil {
		t.Fatalf("a correct trace: %v", err)
	}
	tr.EndContent = "hello"
	if _, err := measure(tr, 1); err == nil || !strings.Contains(err.Error(), "differs from endContent") {
		t.Fatalf("a trace whose endContent is wrong: err = %v, want differs from endContent", err)
	}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, cfg := range []benchConfig{{count: 0}, {trace: "no-such-trace", count: 1}} {
		if err := runBench(new(bytes.Buffer), cfg); err == nil {
			t.Errorf("runBench(%+v) = nil, want an error", cfg)
		}
	}
}
