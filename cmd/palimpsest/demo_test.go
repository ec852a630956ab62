package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/palimpsest-editor/palimpsest/crdt"
)

func TestDemoConverges(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		cfg := demoConfig{seed: seed, replicas: 2 + int(seed%6), edits: 40}
		var out bytes.Buffer
		if err := runDemo(&out, cfg); err != nil {
			t.Fatalf("seed %d, %d replicas: %v\n%s", seed, cfg.replicas, err, out.String())
		}
		for _, want := range []string{fmt.Sprintf("seed %d:", seed), "partition:", "partition heals", "converged: all"} {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("seed %d: output lacks %q:\n%s", seed, want, out.String())
			}
		}
	}
}

func TestDemoReplaysItsSeed(t *testing.T) {
	run := func() string {
		var out bytes.Buffer
		if err := runDemo(&out, demoConfig{seed: 42, replicas: 5, edits: 30}); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if a, b := run(), run(); a != b {
		t.Fatalf("two runs with seed 42 differ:\n%s\n---\n%s", a, b)
	}
}

func TestDemoCommandFlags(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"demo", "--seed", "7", "--replicas", "3", "--edits", "9"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "seed 7: 3 replicas, 9 edits each") {
		t.Fatalf("flags not applied; output:\n%s", out.String())
	}
	if n := strings.Count(out.String(), "\nreplica "); n != 3 {
		t.Fatalf("printed %d replicas, want 3", n)
	}
}

func TestDemoRejectsBadFlags(t *testing.T) {
	for _, cfg := range []demoConfig{{replicas: 1}, {replicas: 65}, {replicas: 3, edits: -1}} {
		if err := runDemo(new(bytes.Buffer), cfg); err == nil {
			t.Errorf("runDemo(%+v) = nil, want an error", cfg)
		}
	}
}

// converged must notice replicas that differ, or the demo's verdict means nothing.
func TestConvergedNoticesDivergence(t *testing.T) {
	newDoc := func(site crdt.SiteID, text string) *crdt.Doc {
		d := crdt.New(site, rand.NewPCG(uint64(site), 0))
		if _, err := d.Insert(0, text); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := []struct {
		name    string
		docs    []*crdt.Doc
		wantErr string
	}{
		{"different text", []*crdt.Doc{newDoc(1, "abc"), newDoc(1, "abd")}, "texts differ"},
		// Same text typed by two sites: same letters, different identifiers.
		{"different identifiers", []*crdt.Doc{newDoc(1, "abc"), newDoc(2, "abc")}, "identifiers differ from position 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := converged(c.docs)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("converged = %v, want an error containing %q", err, c.wantErr)
			}
		})
	}
	t.Run("different clocks", func(t *testing.T) {
		a, b := newDoc(1, "abc"), newDoc(1, "abc")
		if _, err := b.Insert(3, "d"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Delete(3, 1); err != nil {
			t.Fatal(err)
		}
		if err := converged([]*crdt.Doc{a, b}); err == nil || !strings.Contains(err.Error(), "clocks differ") {
			t.Fatalf("converged = %v, want clocks differ", err)
		}
	})
}
