package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/palimpsest-editor/palimpsest/projections"
)

func init() { subcommands = append(subcommands, newRebuildCmd) }

type rebuildConfig struct {
	projectionFlags
	batch    int
	progress bool
}

func newRebuildCmd() *cobra.Command {
	cfg := rebuildConfig{progress: true}
	cmd := &cobra.Command{
		Use:   "rebuild <projection>",
		Short: "Rebuild a projection from sequence 0 beside the live one, then switch to it atomically",
		Long: `rebuild state folds the whole event log, from its first event, into a fresh generation of
the state projection beside the live one (Postgres: new tables; JetStream KV: a new bucket), with
a progress bar and ETA, catches up with the events appended meanwhile, and then makes the new
generation live in one step (Postgres: the pointer row and the "documents" view in one
transaction; KV: the pointer key). Running projectors carry on and switch to the new generation
at their next batch. If the rebuild dies, the live projection is untouched; run it again.

The stores are chosen as for 'palimpsest projector' (--nats, --postgres, PALIMPSEST_* ...).`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"state"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "state" {
				return fmt.Errorf("unknown projection %q: the one projection with durable state is \"state\" (snapshots and the read model are caches the projector refills)", args[0])
			}
			logger, err := cfg.fromEnvAndLogger(cmd.Flags())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			_, err = runRebuild(ctx, cfg, logger, cmd.OutOrStdout(), cmd.ErrOrStderr())
			return err
		},
	}
	cfg.register(cmd.Flags())
	cmd.Flags().IntVar(&cfg.batch, "batch", 0, "events folded per commit (default 20000)")
	cmd.Flags().BoolVar(&cfg.progress, "progress", cfg.progress, "show a progress bar with ETA on stderr")
	return cmd
}

func runRebuild(ctx context.Context, cfg rebuildConfig, logger *slog.Logger, stdout, stderr io.Writer) (projections.RebuildStats, error) {
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b, err := cfg.open(octx, logger, false)
	if err != nil {
		return projections.RebuildStats{}, err
	}
	defer b.close()
	var bar *progressbar.ProgressBar
	rc := projections.RebuildConfig{Log: b.log, State: b.state, BatchSize: cfg.batch, Logger: logger}
	if cfg.progress {
		rc.Progress = func(done, head uint64) {
			if bar == nil {
				bar = progressbar.NewOptions64(int64(head),
					progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("rebuild state"),
					progressbar.OptionShowCount(),
					progressbar.OptionShowIts(),
					progressbar.OptionSetItsString("events"),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
				)
			}
			if int64(head) > bar.GetMax64() {
				bar.ChangeMax64(int64(head))
			}
			_ = bar.Set64(int64(done))
		}
	}
	st, err := projections.Rebuild(ctx, rc)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return st, err
	}
	rate := float64(st.Events) / max(st.Duration.Seconds(), 1e-9)
	fmt.Fprintf(stdout, "rebuilt state: %d events (%d ops, %d poison) of %d documents up to sequence %d in %s (%.0f events/s); promoted\n",
		st.Events, st.Ops, st.Poison, st.Docs, st.Head, st.Duration.Round(time.Millisecond), rate)
	return st, nil
}
