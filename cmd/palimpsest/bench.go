package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/palimpsest-editor/palimpsest/internal/cputime"
	"github.com/palimpsest-editor/palimpsest/internal/traces"
)

func newBenchCmd() *cobra.Command {
	bench := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks",
	}
	bench.AddCommand(newBenchCRDTCmd())
	for _, sub := range benchSubcommands {
		bench.AddCommand(sub())
	}
	return bench
}

// benchSubcommands holds the constructors of bench's other subcommands; each adds its own in an
// init function of its file, like the top-level subcommands.
var benchSubcommands []func() *cobra.Command

type benchConfig struct {
	trace string // substring of the trace names to run; empty runs all
	count int    // rounds of measurements; the best of each is reported
}

func newBenchCRDTCmd() *cobra.Command {
	cfg := benchConfig{count: 10}
	cmd := &cobra.Command{
		Use:   "crdt",
		Short: "Replay the editing traces through the CRDT and the gap-buffer baseline, and print a table",
		Long: `crdt replays every trace in testdata/traces (real keystroke histories) and measures, as the
best of --count rounds, in CPU time of the process (garbage collection included; on a shared
machine the time spent waiting for a CPU is not the code's). Each round times every way once,
back to back, so that a slow spell of a shared machine slows the baseline too:

  baseline    the trace replayed into a plain gap buffer (internal/baseline)
  local       the trace replayed by local edits into a crdt.Doc, each op handed on (as an
              editor sends it) and not kept
  remote      those ops applied in order to a fresh replica with Doc.ApplyTo, reusing the
              changes buffer (as an editor patching its view does)
  wire        the same, with the ops decoded from their encoding first (untimed), as a
              receiving editor holds them
  encode      the final state written as a snapshot; decode: the snapshot loaded back

It checks that every replay ends in the trace's final text and that the remote replica and the
decoded snapshot equal the local replica (text, identifiers, clock), and fails if not. The last
column lists the goals a trace misses: local ≤ 8× baseline, remote ≤ 12× baseline, decode
faster than remote replay, and a snapshot of at most 2.5 bytes a character for automerge-paper.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.OutOrStdout(), cfg)
		},
	}
	cmd.Flags().StringVar(&cfg.trace, "trace", "", "run only traces whose name contains this")
	cmd.Flags().IntVar(&cfg.count, "count", cfg.count, "rounds of measurements (the best of each is reported)")
	return cmd
}

func runBench(w io.Writer, cfg benchConfig) error {
	if cfg.count < 1 {
		return fmt.Errorf("--count %d: want 1 or more", cfg.count)
	}
	var names []string
	for _, name := range traces.All() {
		if strings.Contains(name, cfg.trace) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("--trace %q matches none of %v", cfg.trace, traces.All())
	}
	clock := "CPU time of the process"
	if !cputime.Precise {
		clock = "wall-clock time (no CPU time on this platform)"
	}
	fmt.Fprintf(w, "%s %s/%s, GOMAXPROCS %d, best of %d, %s\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), cfg.count, clock)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, tableHeader)
	for _, name := range names {
		tr, err := traces.Open(name)
		if err != nil {
			return err
		}
		m, err := measure(tr, cfg.count)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, m.row())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprint(w, tableLegend)
	return nil
}

const tableHeader = "trace\tops\tbaseline ms\tlocal ms\tlocal/base\tremote ms\tremote/base\twire ms\twire/base\t" +
	"snapshot B\tB/char\tencode ms\tdecode ms\tdecode/remote\tdepth mean\tdepth max\t" +
	"B/id\tB/op\tallocs/op\theap KiB\theap B/char\tmissed goals\t"

const tableLegend = `
local, remote: replaying the trace into a crdt.Doc by local edits, and applying the resulting ops
to a fresh replica; wire: the same ops decoded from their encoding before being applied (not a
goal of issue 2, reported for what a receiving editor sees); /base is the multiple of the
gap-buffer replay (ms: CPU milliseconds).
snapshot B, B/char: encoded final state and its bytes per code point. depth: levels per
identifier; B/id: bytes of an identifier (12 a level; in memory a run of identifiers shares its
prefix); B/op: bytes per op encoded with AppendOp; allocs/op: heap allocations of the local
replay per op; heap: live heap of one replica after the local replay.
`

// Goals, from issue 2.
const (
	maxLocalRatio  = 8.0
	maxRemoteRatio = 12.0
	maxBytesPerChr = 2.5 // for goalBytesTrace
	goalBytesTrace = "automerge-paper"
)

func (m *measurement) row() string {
	localRatio := ratio(m.local, m.baseline)
	remoteRatio := ratio(m.remote, m.baseline)
	bytesPerChar := float64(m.snapshotBytes) / float64(max(m.chars, 1))
	cells := []string{
		m.trace,
		fmt.Sprint(m.ops),
		millis(m.baseline),
		millis(m.local),
		fmt.Sprintf("%.1f×", localRatio),
		millis(m.remote),
		fmt.Sprintf("%.1f×", remoteRatio),
		millis(m.wire),
		fmt.Sprintf("%.1f×", ratio(m.wire, m.baseline)),
		fmt.Sprint(m.snapshotBytes),
		fmt.Sprintf("%.2f", bytesPerChar),
		millis(m.encode),
		millis(m.decode),
		fmt.Sprintf("%.2f×", ratio(m.decode, m.remote)),
		fmt.Sprintf("%.2f", m.stats.MeanDepth),
		fmt.Sprint(m.stats.MaxDepth),
		fmt.Sprintf("%.1f", m.stats.MeanIDBytes),
		fmt.Sprintf("%.1f", float64(m.opBytes)/float64(max(m.ops, 1))),
		fmt.Sprintf("%.1f", m.allocsPerOp),
		fmt.Sprint(m.heapBytes / 1024),
		fmt.Sprintf("%.1f", float64(m.heapBytes)/float64(max(m.chars, 1))),
		m.missedGoals(localRatio, remoteRatio, bytesPerChar),
	}
	return strings.Join(cells, "\t") + "\t"
}

func (m *measurement) missedGoals(localRatio, remoteRatio, bytesPerChar float64) string {
	var missed []string
	if localRatio > maxLocalRatio {
		missed = append(missed, fmt.Sprintf("local>%g×", maxLocalRatio))
	}
	if remoteRatio > maxRemoteRatio {
		missed = append(missed, fmt.Sprintf("remote>%g×", maxRemoteRatio))
	}
	if m.decode >= m.remote {
		missed = append(missed, "decode≥remote")
	}
	if m.trace == goalBytesTrace && bytesPerChar > maxBytesPerChr {
		missed = append(missed, fmt.Sprintf("B/char>%g", maxBytesPerChr))
	}
	if len(missed) == 0 {
		return "none"
	}
	return strings.Join(missed, " ")
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(max(b, 1)) }

func millis(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func init() { subcommands = append(subcommands, newBenchCmd) }
