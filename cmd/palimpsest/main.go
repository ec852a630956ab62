// Command palimpsest is the project's one binary. For now it has two subcommands:
//
//	palimpsest demo          # replicas edit one document over a faulty simulated network
//	palimpsest bench crdt    # replays the editing traces through the CRDT and the baseline
package main

import (
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		os.Exit(1) // cobra has printed the error
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "palimpsest",
		Short:         "Palimpsest: a collaborative text editor backend (LSEQ CRDT, event-sourced on NATS JetStream)",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.AddCommand(newDemoCmd(), newBenchCmd())
	return root
}
