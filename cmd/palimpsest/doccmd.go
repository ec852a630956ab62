package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/palimpsest-editor/palimpsest/services/read"
)

func init() { subcommands = append(subcommands, newDocCmd) }

// docConfig configures the doc commands: the stores, as read's.
type docConfig struct {
	projectionFlags
	json bool
	// out and errOut are where the answer and the logs go.
	out io.Writer
}

// newDocCmd is the read API's command-line face. It talks to the log and
// the stores directly, through the same code as the HTTP API (package
// services/read), not to a running API: an operator who holds the stores'
// credentials needs no token, and it works with nothing else running (on
// the embedded stores of a stopped `serve`, with --data).
func newDocCmd() *cobra.Command {
	cfg := &docConfig{}
	cmd := &cobra.Command{
		Use:   "doc",
		Short: "Read documents from the log and the stores: get (now or --at a version or time), history, diff, blame",
		Long: `doc reads documents through the read API's code, talking to the log and the stores directly
(the same flags and PALIMPSEST_* variables as read and projector: --nats, --postgres, --s3,
--redis; without --nats it opens the embedded stores under --data, which no other process may be
using). No token is needed: whoever holds the stores' credentials may read everything.

  palimpsest doc get notes                         the current text
  palimpsest doc get notes --at 1234               right after version 1234
  palimpsest doc get notes --at 2026-01-02T15:04:05Z
  palimpsest doc history notes --author ada --limit 20
  palimpsest doc diff notes --from 1200 --to 1234
  palimpsest doc blame notes

--json prints what the HTTP API answers.`,
	}
	pf := cmd.PersistentFlags()
	cfg.register(pf)
	pf.BoolVar(&cfg.json, "json", false, "print JSON, as the HTTP API answers")
	cmd.AddCommand(newDocGetCmd(cfg), newDocHistoryCmd(cfg), newDocDiffCmd(cfg), newDocBlameCmd(cfg))
	return cmd
}

// withDocService opens the stores and runs fn with a read service on them.
func withDocService(cmd *cobra.Command, cfg *docConfig, fn func(ctx context.Context, s *read.Service) error) error {
	if cfg.out == nil {
		cfg.out = cmd.OutOrStdout()
	}
	if err := flagsFromEnv(cmd.Flags()); err != nil {
		return err
	}
	logger, err := newLogger(cmd.ErrOrStderr(), cfg.logFormat, cfg.logLevel)
	if err != nil {
		return err
	}
	if !cmd.Flags().Changed("log-level") && os.Getenv(envPrefix+"LOG_LEVEL") == "" {
		logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	b, err := cfg.open(ctx, logger, true)
	if err != nil {
		return err
	}
	defer b.close()
	scfg := read.Config{Log: b.log, State: b.state, Snapshots: b.snaps, Logger: logger}
	if cfg.redis != "" {
		scfg.Cache = b.read
	}
	s, err := read.New(scfg)
	if err != nil {
		return err
	}
	return fn(ctx, s)
}

func (cfg *docConfig) printJSON(v any) error {
	enc := json.NewEncoder(cfg.out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newDocGetCmd(cfg *docConfig) *cobra.Command {
	var at string
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Print a document's text: current, or --at a version or an RFC 3339 time",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withDocService(cmd, cfg, func(ctx context.Context, s *read.Service) error {
				var d read.Document
				var err error
				if at == "" {
					d, err = s.Current(ctx, args[0])
				} else {
					var v uint64
					if v, err = s.Resolve(ctx, args[0], "--at", at); err == nil {
						d, err = s.At(ctx, args[0], v)
					}
				}
				if err != nil {
					return err
				}
				if cfg.json {
					return cfg.printJSON(d)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s version %d, %s by %s, %d chars (from %s)\n",
					d.ID, d.Version, d.Updated.Format(time.RFC3339), d.Author, d.Length, d.Source)
				_, err = fmt.Fprintln(cfg.out, d.Text)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "a version (sequence) or an RFC 3339 time")
	return cmd
}

func newDocHistoryCmd(cfg *docConfig) *cobra.Command {
	var since, until, cursor string
	var q read.HistoryQuery
	var all bool
	cmd := &cobra.Command{
		Use:   "history ID",
		Short: "List a document's versions: author, time and a summary, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, p := range []struct {
				s string
				t *time.Time
			}{{since, &q.Since}, {until, &q.Until}} {
				if p.s == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339Nano, p.s)
				if err != nil {
					return fmt.Errorf("--since/--until %q: want an RFC 3339 time", p.s)
				}
				*p.t = t
			}
			q.Cursor = cursor
			return withDocService(cmd, cfg, func(ctx context.Context, s *read.Service) error {
				tw := tabwriter.NewWriter(cfg.out, 2, 8, 2, ' ', 0)
				if !cfg.json {
					fmt.Fprintln(tw, "VERSION\tTIME\tAUTHOR\tCHANGE")
				}
				for {
					page, err := s.History(ctx, args[0], q)
					if err != nil {
						return err
					}
					if cfg.json {
						if err := cfg.printJSON(page); err != nil {
							return err
						}
					} else {
						for _, v := range page.Versions {
							fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", v.Version, v.Time.Format(time.RFC3339Nano), v.Author, v.Summary)
						}
					}
					if !all || page.NextCursor == "" {
						if !cfg.json && page.NextCursor != "" {
							fmt.Fprintf(cmd.ErrOrStderr(), "more: --cursor %s (or --all)\n", page.NextCursor)
						}
						break
					}
					q.Cursor = page.NextCursor
				}
				return tw.Flush()
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "only versions stored at or after this RFC 3339 time")
	f.StringVar(&until, "until", "", "only versions stored at or before this RFC 3339 time")
	f.StringVar(&q.Author, "author", "", "only this author's versions")
	f.IntVar(&q.Limit, "limit", 0, "versions a page (default 100, at most 1000)")
	f.StringVar(&cursor, "cursor", "", "continue after a previous page")
	f.BoolVar(&all, "all", false, "follow every page to the end")
	return cmd
}

func newDocDiffCmd(cfg *docConfig) *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "diff ID --from V [--to V]",
		Short: "Show what changed between two versions (or RFC 3339 times; --from 0 is the empty document)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withDocService(cmd, cfg, func(ctx context.Context, s *read.Service) error {
				f, err := s.Resolve(ctx, args[0], "--from", from)
				if err != nil {
					return err
				}
				var t uint64
				if to == "" {
					t, err = s.Latest(ctx, args[0])
				} else {
					t, err = s.Resolve(ctx, args[0], "--to", to)
				}
				if err != nil {
					return err
				}
				d, err := s.Diff(ctx, args[0], f, t)
				if err != nil {
					return err
				}
				if cfg.json {
					return cfg.printJSON(d)
				}
				fmt.Fprintf(cfg.out, "%s %d..%d: +%d −%d chars\n", d.ID, d.From, d.To, d.Inserted, d.Deleted)
				for _, c := range d.Changes {
					sign := "+"
					if c.Op == "delete" {
						sign = "-"
					}
					fmt.Fprintf(cfg.out, "%s @%d/%d %q\n", sign, c.FromPos, c.ToPos, c.Text)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "0", "the earlier version or time (0: the empty document)")
	cmd.Flags().StringVar(&to, "to", "", "the later version or time (default: the current version)")
	return cmd
}

func newDocBlameCmd(cfg *docConfig) *cobra.Command {
	var at, granularity string
	cmd := &cobra.Command{
		Use:   "blame ID [--at V]",
		Short: "Show who wrote each run of a document's text, and when",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withDocService(cmd, cfg, func(ctx context.Context, s *read.Service) error {
				var v uint64
				if at != "" {
					var err error
					if v, err = s.Resolve(ctx, args[0], "--at", at); err != nil {
						return err
					}
				}
				b, err := s.Blame(ctx, args[0], v, granularity)
				if err != nil {
					return err
				}
				if cfg.json {
					return cfg.printJSON(b)
				}
				tw := tabwriter.NewWriter(cfg.out, 2, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "POS\tAUTHOR\tVERSION\tTIME\tTEXT")
				for _, r := range b.Runs {
					fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%q\n", r.Pos, r.Author, r.Version, r.Time.Format(time.RFC3339), r.Text)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "a version (sequence) or an RFC 3339 time (default: the latest)")
	cmd.Flags().StringVar(&granularity, "granularity", read.ByAuthor, "author (adjacent text of one author is one run) or event")
	return cmd
}
