package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/palimpsest-editor/palimpsest/services/bridge"
)

func init() { subcommands = append(subcommands, newBridgeCmd) }

// bridgeFlags are the flags `bridge run` and `bridge replay` share.
type bridgeFlags struct {
	nats            string
	sinks           []string
	kafka           []string
	kafkaTopic      string
	dlqTopic        string
	kafkaGroup      string
	kafkaPartitions int32
	dynamodb        string
	table           string
	region          string
	create          bool
	batch           int
	logFormat       string
	logLevel        string
}

func (f *bridgeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.nats, "nats", "nats://127.0.0.1:4222", "URL(s) of the NATS server or cluster holding the event log")
	fs.StringSliceVar(&f.sinks, "sinks", []string{bridge.SinkKafka, bridge.SinkDynamoDB}, "sinks to mirror to: kafka, dynamodb, or both")
	fs.StringSliceVar(&f.kafka, "kafka", []string{"localhost:9092"}, "Kafka seed brokers, comma-separated")
	fs.StringVar(&f.kafkaTopic, "kafka-topic", "new-event", "Kafka topic events are mirrored to (and, with --inbound, read from)")
	fs.StringVar(&f.dlqTopic, "dlq-topic", "new-event-dlq", "Kafka topic of refused inbound records")
	fs.StringVar(&f.kafkaGroup, "kafka-group", "palimpsest-bridge", "Kafka consumer group of the inbound direction; <group>-out keeps the outbound checkpoint")
	fs.Int32Var(&f.kafkaPartitions, "kafka-partitions", 16, "partitions of topics the bridge creates")
	fs.StringVar(&f.dynamodb, "dynamodb", "", "DynamoDB endpoint URL (empty: AWS's, from the region)")
	fs.StringVar(&f.table, "dynamodb-table", "palimpsest-events", "DynamoDB table (partition key documentId, sort key sequence)")
	fs.StringVar(&f.region, "dynamodb-region", "", "AWS region (default: the AWS configuration's, else us-east-1)")
	fs.BoolVar(&f.create, "create", true, "create the Kafka topics and the DynamoDB table when they do not exist")
	fs.IntVar(&f.batch, "batch", 500, "events fetched, written and acknowledged at once")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// options turns the flags into the bridge's options, with a logger on w.
func (f *bridgeFlags) options(w io.Writer) (bridge.Options, error) {
	log, err := newLogger(w, f.logFormat, f.logLevel)
	if err != nil {
		return bridge.Options{}, err
	}
	var sinks []string
	for _, s := range f.sinks {
		if s = strings.TrimSpace(s); s != "" && s != "none" {
			sinks = append(sinks, s)
		}
	}
	return bridge.Options{
		NATS:  f.nats,
		Sinks: sinks,
		Kafka: bridge.KafkaConfig{Brokers: f.kafka, Topic: f.kafkaTopic, DLQTopic: f.dlqTopic, Group: f.kafkaGroup,
			Create: f.create, Partitions: f.kafkaPartitions},
		DynamoDB: bridge.DynamoConfig{Endpoint: f.dynamodb, Table: f.table, Region: f.region, Create: f.create},
		Bridge:   bridge.Config{Batch: f.batch, Logger: log},
	}, nil
}

const bridgeEnvHelp = `Every flag can also be set by an environment variable: PALIMPSEST_ and the flag's name in upper
case with '_' for '-' (PALIMPSEST_NATS, PALIMPSEST_KAFKA, PALIMPSEST_DYNAMODB,
PALIMPSEST_DYNAMODB_TABLE, PALIMPSEST_SINKS, PALIMPSEST_INBOUND); a flag on the command line wins.
AWS credentials come from the AWS SDK's default chain (AWS_ACCESS_KEY_ID, profiles, IRSA...);
with --dynamodb and none set, dummy ones (for DynamoDB Local and dynalite).`

func newBridgeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bridge",
		Short: "Mirror the event log to Kafka and DynamoDB (and Kafka back to the log)",
		Long: `bridge keeps the AWS shape of this system in step with the event log: every event goes to the
Kafka topic new-event (key = document id) and to a DynamoDB table (documentId, sequence), each
exactly once in document order; optionally, records AWS-side producers write to new-event are
appended to the log. See docs/adr/0006-kafka-dynamodb-bridge.md.`,
	}
	cmd.AddCommand(newBridgeRunCmd(), newBridgeReplayCmd())
	return cmd
}

func newBridgeRunCmd() *cobra.Command {
	var f bridgeFlags
	var addr, consumer string
	var inbound bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the bridge: a durable consumer of every document, acknowledged after every sink has the event",
		Long: `run mirrors every event of the log, through the durable JetStream consumer --consumer, to the
enabled --sinks, and acknowledges an event only after each sink confirmed it. Killed at any moment,
it resumes at its first unacknowledged event and neither loses nor duplicates one. With --inbound
it also appends the records of --kafka-topic that AWS-side producers wrote (JSON: documentId, opId,
site, counter, author, op in base64) to the log, deduplicated by op id; refused records go to
--dlq-topic with their reason. Records it produced itself carry the header palimpsest-origin and are
skipped, so there is no echo. --addr serves /metrics (palimpsest_bridge_lag_events{sink} ...),
/healthz and /readyz.

` + bridgeEnvHelp,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return flagsFromEnv(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o, err := f.options(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			o.Addr, o.Inbound, o.Bridge.Consumer = addr, inbound, consumer
			return bridge.Run(ctx, o)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&addr, "addr", "localhost:8085", "host:port of /metrics, /healthz and /readyz (empty: none)")
	cmd.Flags().StringVar(&consumer, "consumer", "palimpsest-bridge", "name of the durable JetStream consumer (one bridge process at a time per name)")
	cmd.Flags().BoolVar(&inbound, "inbound", false, "also append records from AWS-side producers on --kafka-topic to the log")
	return cmd
}

func newBridgeReplayCmd() *cobra.Command {
	var f bridgeFlags
	var from string
	var to uint64
	var progress bool
	cmd := &cobra.Command{
		Use:   "replay --from <seq|time>",
		Short: "Mirror a range of the log again, with a progress bar",
		Long: `replay writes the events from --from (a stream sequence, or an RFC 3339 time: the events stored
at or after it) to --to (default: the last event now) to the enabled --sinks again, in log order.
It does not touch the running bridge's consumer. DynamoDB's conditional puts make replaying into an
intact table a no-op; Kafka receives every event of the range again (consumers keep the last
palimpsest-seq of each document and drop older records).

` + bridgeEnvHelp,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return flagsFromEnv(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := parseReplayFrom(from)
			if err != nil {
				return err
			}
			r.To = to
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o, err := f.options(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return runBridgeReplay(ctx, o, r, progress, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&from, "from", "", "first stream sequence, or an RFC 3339 time (required)")
	cmd.Flags().Uint64Var(&to, "to", 0, "last stream sequence (default: the last event when the replay starts)")
	cmd.Flags().BoolVar(&progress, "progress", true, "show a progress bar on stderr")
	return cmd
}

// parseReplayFrom reads --from: a sequence or an RFC 3339 time.
func parseReplayFrom(from string) (bridge.Range, error) {
	if from == "" {
		return bridge.Range{}, errors.New("--from is required: a stream sequence or an RFC 3339 time")
	}
	if seq, err := strconv.ParseUint(from, 10, 64); err == nil {
		return bridge.Range{From: seq}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, from)
	if err != nil {
		return bridge.Range{}, fmt.Errorf("--from %q: want a stream sequence or an RFC 3339 time such as 2026-01-02T15:04:05Z", from)
	}
	return bridge.Range{Since: t}, nil
}

func runBridgeReplay(ctx context.Context, o bridge.Options, r bridge.Range, progress bool, stdout, stderr io.Writer) error {
	var bar *progressbar.ProgressBar
	var show func(done, total int64)
	if progress {
		show = func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total,
					progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("replay"),
					progressbar.OptionShowCount(),
					progressbar.OptionShowIts(),
					progressbar.OptionSetItsString("events"),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
				)
			}
			_ = bar.Set64(done)
		}
	}
	st, err := bridge.RunReplay(ctx, o, r, show)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	if st.Events == 0 && st.Bad == 0 {
		fmt.Fprintln(stdout, "replay: no events in the range")
		return nil
	}
	fmt.Fprintf(stdout, "replay: sequences %d to %d: %d events to %s", st.First, st.Last, st.Events, strings.Join(o.Sinks, " and "))
	if st.Bad > 0 {
		fmt.Fprintf(stdout, ", %d stored events did not decode and were skipped", st.Bad)
	}
	fmt.Fprintln(stdout)
	return nil
}
