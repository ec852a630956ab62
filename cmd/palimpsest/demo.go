package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/spf13/cobra"

	"github.com/palimpsest-editor/palimpsest/crdt"
)

type demoConfig struct {
	seed     uint64
	replicas int
	edits    int // per replica
}

func newDemoCmd() *cobra.Command {
	cfg := demoConfig{replicas: 5, edits: 24}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Replicas type into one document over a network that delays, reorders, duplicates and partitions, then converge",
		Long: `demo runs a scripted session of the LSEQ CRDT: every replica types words and deletes
some at random places, all at once, over a simulated network that delays messages, delivers
different sites' messages in any order (each site's own in order), sends some twice, and cuts
the replicas into two partitions for the middle third of the session. Then the network heals,
everything in flight is delivered, and demo prints every replica's text and checks that all of
them hold the same text and the same identifiers. It exits non-zero if they do not.

Words typed at the same place at the same time may come out with their letters interleaved:
LSEQ orders concurrent inserts by their identifiers, not word by word. All replicas still agree.

Without --seed it picks one and prints it; --seed replays a run exactly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("seed") {
				cfg.seed = rand.Uint64()
			}
			return runDemo(cmd.OutOrStdout(), cfg)
		},
	}
	cmd.Flags().Uint64Var(&cfg.seed, "seed", 0, "seed of every random choice (default: a random one, printed)")
	cmd.Flags().IntVar(&cfg.replicas, "replicas", cfg.replicas, "number of replicas (2 to 64)")
	cmd.Flags().IntVar(&cfg.edits, "edits", cfg.edits, "local edits each replica makes")
	return cmd
}

// words is what the replicas type: a few have non-ASCII code points, to show that positions
// count code points.
var words = strings.Fields("ink vellum quill scribe margin gloss folio codex erase rewrite layer café naïve 📜")

// runDemo runs the session described in newDemoCmd's help and writes its report to w.
func runDemo(w io.Writer, cfg demoConfig) error {
	if cfg.replicas < 2 || cfg.replicas > 64 {
		return fmt.Errorf("--replicas %d: want 2 to 64", cfg.replicas)
	}
	if cfg.edits < 0 {
		return fmt.Errorf("--edits %d: want 0 or more", cfg.edits)
	}
	fmt.Fprintf(w, "seed %d: %d replicas, %d edits each (replay with --seed %d)\n", cfg.seed, cfg.replicas, cfg.edits, cfg.seed)
	rng := rand.New(rand.NewPCG(cfg.seed, 0x5eed))
	docs := make([]*crdt.Doc, cfg.replicas)
	for i := range docs {
		docs[i] = crdt.New(crdt.SiteID(i+1), rand.NewPCG(cfg.seed, uint64(i+1)))
	}
	net := newNetwork(rng, docs)

	cut, heal := cfg.edits/3, 2*cfg.edits/3
	for round := range cfg.edits {
		switch round {
		case cut:
			k := cfg.replicas / 2
			net.partition(k)
			fmt.Fprintf(w, "round %d: partition: %s | %s\n", round, replicaSpan(1, k), replicaSpan(k+1, cfg.replicas))
		case heal:
			net.heal()
			fmt.Fprintf(w, "round %d: partition heals, %d messages in flight\n", round, net.inFlight())
		}
		for _, i := range rng.Perm(cfg.replicas) {
			op, err := randomEdit(rng, docs[i])
			if err != nil {
				return fmt.Errorf("replica %d: %w", i+1, err)
			}
			if !op.IsZero() {
				net.send(i, op)
			}
		}
		if err := net.tick(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "typing over: %d distinct texts, %d messages in flight; delivering the rest\n", distinctTexts(docs), net.inFlight())
	if err := net.drain(); err != nil {
		return err
	}
	fmt.Fprintf(w, "network: %d messages sent, %d extra duplicates, %d deliveries\n\n",
		net.stats.sent, net.stats.duplicated, net.stats.delivered)
	for i, d := range docs {
		fmt.Fprintf(w, "replica %d: %q\n", i+1, d.Text())
	}
	if err := converged(docs); err != nil {
		fmt.Fprintf(w, "\nNOT CONVERGED: %v\n", err)
		return err
	}
	fmt.Fprintf(w, "\nconverged: all %d replicas hold the same %d code points under the same %d identifiers\n",
		len(docs), docs[0].Len(), docs[0].Stats().Elements)
	return nil
}

// randomEdit types a word at the start of a random word (or at the end), or, one time in four,
// deletes a random word.
func randomEdit(rng *rand.Rand, d *crdt.Doc) (crdt.Op, error) {
	text := []rune(d.Text())
	starts := []int{0}
	for i, r := range text {
		if r == ' ' {
			starts = append(starts, i+1)
		}
	}
	if len(text) > 0 && rng.IntN(4) == 0 {
		pos := starts[rng.IntN(len(starts))]
		if pos == len(text) {
			pos = starts[0]
		}
		end := pos
		for end < len(text) && text[end] != ' ' {
			end++
		}
		return d.Delete(pos, min(end+1, len(text))-pos)
	}
	return d.Insert(starts[rng.IntN(len(starts))], words[rng.IntN(len(words))]+" ")
}

// converged checks every replica against the first.
func converged(docs []*crdt.Doc) error {
	var errs []error
	for i, d := range docs[1:] {
		if err := sameState(docs[0], d); err != nil {
			errs = append(errs, fmt.Errorf("replica %d against replica 1: %w", i+2, err))
		}
	}
	return errors.Join(errs...)
}

func replicaSpan(first, last int) string {
	if first == last {
		return fmt.Sprintf("replica %d", first)
	}
	return fmt.Sprintf("replicas %d-%d", first, last)
}

func distinctTexts(docs []*crdt.Doc) int {
	seen := map[string]bool{}
	for _, d := range docs {
		seen[d.Text()] = true
	}
	return len(seen)
}
