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
	for _, sub := range subcommands {
		root.AddCommand(sub())
	}
	return root
}

// subcommands holds every subcommand's constructor. Each subcommand's file adds its own in an
// init function, so adding one never touches this file.
var subcommands = []func() *cobra.Command{newDemoCmd}
