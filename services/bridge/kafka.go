package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/palimpsest-editor/palimpsest/eventlog"
)

// KafkaConfig says where the Kafka side is. The zero value of every field but
// Brokers takes the default named on it.
type KafkaConfig struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Topic is the topic events are mirrored to and, inbound, read from.
	// Default "new-event".
	Topic string
	// DLQTopic receives inbound records that are refused. Default "new-event-dlq".
	DLQTopic string
	// Group is the inbound consumer group; the outbound checkpoint is kept as
	// the offsets of group Group+"-out". Default "palimpsest-bridge".
	Group string
	// Create makes missing topics with Partitions partitions (default 16)
	// and ReplicationFactor replicas (default -1: the brokers' default).
	Create            bool
	Partitions        int32
	ReplicationFactor int16
	// ClientID names the client in the brokers' logs. Default "palimpsest-bridge".
	ClientID string
}

func (c KafkaConfig) withDefaults() (KafkaConfig, error) {
	if len(c.Brokers) == 0 {
		return c, errors.New("bridge: Kafka needs at least one broker")
	}
	if c.Topic == "" {
		c.Topic = "new-event"
	}
	if c.DLQTopic == "" {
		c.DLQTopic = "new-event-dlq"
	}
	if c.Group == "" {
		c.Group = "palimpsest-bridge"
	}
	if c.Partitions == 0 {
		c.Partitions = 16
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.ClientID == "" {
		c.ClientID = "palimpsest-bridge"
	}
	return c, nil
}

// clientOpts are the options every client of the bridge shares. Retries are
// unlimited and have no deadline: while Kafka is away the bridge waits.
func (c KafkaConfig) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.RetryBackoffFn(func(n int) time.Duration { return min(time.Duration(n)*100*time.Millisecond, 2*time.Second) }),
	}, extra...)
}

// EnsureTopics checks that the topics exist, creating the missing ones when
// c.Create is set.
func EnsureTopics(ctx context.Context, c KafkaConfig, topics ...string) error {
	c, err := c.withDefaults()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(c.clientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	have, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("bridge: list Kafka topics %v: %w", topics, err)
	}
	for _, t := range topics {
		if d, ok := have[t]; ok && d.Err == nil {
			continue
		}
		if !c.Create {
			return fmt.Errorf("%w: Kafka topic %q does not exist; create it or let the bridge (--create)", ErrMisconfigured, t)
		}
		if _, err := adm.CreateTopic(ctx, c.Partitions, c.ReplicationFactor, nil, t); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("bridge: create Kafka topic %q: %w", t, err)
		}
	}
	return nil
}

// KafkaSink mirrors events to the topic with an idempotent producer: key =
// document id, headers with the stream sequence, event type and schema
// version. Records of one document go to one partition in log order; the
// producer retries without limit and never reorders or duplicates within
// one process.
//
// Across processes (a crash between Kafka's acknowledgement and the log's),
// it keeps the effectively-once promise itself: it commits, as the offsets
// of consumer group <Group>-out, positions before which no record of an
// unacknowledged event can be. On start and after any produce error it
// reads the topic from those positions, notes the highest sequence of each
// document already there, and skips those events. See docs/adr/0006.
type KafkaSink struct {
	cfg    KafkaConfig
	stream string
	group  string // checkpoint group; "" for a replay, which does not dedupe
	log    *slog.Logger
	cl     *kgo.Client
	adm    *kadm.Client

	recover bool              // read the topic before the next produce
	seen    map[string]uint64 // document → highest sequence found on the topic, not yet acknowledged
	safe    map[int32]int64   // per partition: no record of an unacknowledged event lies before it
	base    map[int32]int64   // end offsets read by the last recovery: safe once seen is empty
	dirty   bool              // safe moved since the last checkpoint
	commit  time.Time         // last checkpoint
}

// NewKafkaSink connects the producer. With checkpoint set (the running
// bridge), it deduplicates across restarts as described on KafkaSink; a
// replay passes false and writes every event it is given.
func NewKafkaSink(c KafkaConfig, stream string, checkpoint bool, logger *slog.Logger) (*KafkaSink, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	cl, err := kgo.NewClient(c.clientOpts(
		kgo.DefaultProduceTopic(c.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // needed by the idempotent producer, which is on by default
		kgo.ProducerLinger(0),
		kgo.UnknownTopicRetries(-1),
	)...)
	if err != nil {
		return nil, err
	}
	s := &KafkaSink{cfg: c, stream: stream, log: logger, cl: cl, adm: kadm.NewClient(cl),
		seen: map[string]uint64{}, safe: map[int32]int64{}}
	if checkpoint {
		s.group, s.recover = c.Group+"-out", true
	}
	return s, nil
}

// Name is "kafka".
func (s *KafkaSink) Name() string { return "kafka" }

// Close flushes nothing (Write is synchronous) and closes the client.
func (s *KafkaSink) Close() { s.cl.Close() }

// Write produces the events' records and waits for every one to be
// acknowledged by all in-sync replicas. Ops that came from Kafka are skipped.
func (s *KafkaSink) Write(ctx context.Context, events []eventlog.Event) (Written, error) {
	var w Written
	if s.recover {
		if err := s.recoverSeen(ctx); err != nil {
			return w, err
		}
		s.recover = false
	}
	recs := make([]*kgo.Record, 0, len(events))
	seqs := make(map[*kgo.Record]uint64, len(events)) // results come in completion order
	for _, ev := range events {
		switch {
		case ev.Origin == OriginKafka:
			w.Skipped++
			continue
		case ev.Seq <= s.seen[ev.Doc]:
			w.Already++
			continue
		}
		r, err := kafkaRecord(s.cfg.Topic, s.stream, ev)
		if err != nil {
			return w, fmt.Errorf("bridge: event %d: %w", ev.Seq, err)
		}
		recs = append(recs, r)
		seqs[r] = ev.Seq
	}
	if len(recs) == 0 {
		return w, nil
	}
	var first error
	for _, res := range s.cl.ProduceSync(ctx, recs...) {
		seq := seqs[res.Record]
		if res.Err != nil {
			if first == nil {
				first = fmt.Errorf("bridge: produce event %d of document %q to %s: %w", seq, res.Record.Key, s.cfg.Topic, res.Err)
			}
			continue
		}
		w.New++
		doc := string(res.Record.Key)
		s.seen[doc] = max(s.seen[doc], seq)
		s.safe[res.Record.Partition] = max(s.safe[res.Record.Partition], res.Record.Offset+1)
		s.dirty = true
	}
	if first != nil && s.group != "" {
		// What failed may have been written anyway: read the topic before
		// trying again.
		s.recover = true
	}
	return w, first
}

// Forget drops what it knows about events up to through, now acknowledged
// in the log, and commits its checkpoint when it moved, at most once a
// second, and at least every minute, so Kafka never expires the group's
// offsets.
func (s *KafkaSink) Forget(ctx context.Context, through uint64) {
	for doc, seq := range s.seen {
		if seq <= through {
			delete(s.seen, doc)
		}
	}
	if s.group == "" || len(s.seen) > 0 || s.recover {
		return
	}
	// Nothing found on the topic is unacknowledged any more, so the end
	// offsets of the last recovery are safe too.
	for p, o := range s.base {
		s.safe[p] = max(s.safe[p], o)
		s.dirty = true
	}
	s.base = nil
	if since := time.Since(s.commit); !(s.dirty && since >= time.Second || since >= time.Minute) {
		return
	}
	if err := s.commitSafe(ctx); err != nil {
		s.log.Warn("bridge: Kafka checkpoint", "group", s.group, "err", err)
		return
	}
	s.commit, s.dirty = time.Now(), false
}

func (s *KafkaSink) commitSafe(ctx context.Context) error {
	if len(s.safe) == 0 {
		return nil
	}
	os := kadm.Offsets{}
	for p, o := range s.safe {
		os.Add(kadm.Offset{Topic: s.cfg.Topic, Partition: p, At: o, LeaderEpoch: -1})
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.adm.CommitAllOffsets(cctx, s.group, os)
}

// recoverSeen reads every record after the checkpoint and notes the highest
// sequence of each document that the bridge mirrored from this stream. A
// group without offsets for the topic has never produced: its checkpoint
// becomes the topic's current end, before anything is produced.
func (s *KafkaSink) recoverSeen(ctx context.Context) error {
	committed, err := s.adm.FetchOffsets(ctx, s.group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // Some brokers say so for a group that never committed.
	}
	if err != nil {
		return fmt.Errorf("bridge: read checkpoint group %s: %w", s.group, err)
	}
	starts, err := s.adm.ListStartOffsets(ctx, s.cfg.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("bridge: start offsets of %s: %w", s.cfg.Topic, err)
	}
	ends, err := s.adm.ListEndOffsets(ctx, s.cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("bridge: end offsets of %s: %w", s.cfg.Topic, err)
	}
	from := map[int32]int64{}
	first := true
	ends.Each(func(e kadm.ListedOffset) {
		start, _ := starts.Lookup(s.cfg.Topic, e.Partition)
		at := start.Offset
		if c, ok := committed.Lookup(s.cfg.Topic, e.Partition); ok && c.Err == nil && c.At >= 0 {
			first = false
			at = c.At
		}
		at = min(max(at, start.Offset), e.Offset)
		from[e.Partition] = at
	})
	if first {
		for p := range from {
			end, _ := ends.Lookup(s.cfg.Topic, p)
			s.safe[p] = max(s.safe[p], end.Offset)
		}
		if err := s.commitSafe(ctx); err != nil {
			return fmt.Errorf("bridge: first checkpoint of group %s: %w", s.group, err)
		}
		s.commit = time.Now()
		s.log.Info("bridge: Kafka checkpoint started at the end of the topic", "group", s.group, "topic", s.cfg.Topic)
		return nil
	}
	s.base = map[int32]int64{}
	want := map[int32]kgo.Offset{}
	for p, at := range from {
		end, _ := ends.Lookup(s.cfg.Topic, p)
		s.base[p] = end.Offset
		s.safe[p] = max(s.safe[p], at)
		if at < end.Offset {
			want[p] = kgo.NewOffset().At(at)
		}
	}
	if len(want) == 0 {
		return nil
	}
	rd, err := kgo.NewClient(s.cfg.clientOpts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.cfg.Topic: want}),
		kgo.KeepControlRecords(),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
	)...)
	if err != nil {
		return err
	}
	defer rd.Close()
	left := len(want)
	found := 0
	for left > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return fmt.Errorf("bridge: read %s after the checkpoint: %w", s.cfg.Topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, _ := ends.Lookup(s.cfg.Topic, r.Partition)
			if _, ok := want[r.Partition]; !ok || r.Offset >= end.Offset {
				return
			}
			if seq, ok := mirroredSeq(r, s.stream); ok {
				doc := string(r.Key)
				s.seen[doc] = max(s.seen[doc], seq)
				found++
			}
			if r.Offset+1 >= end.Offset {
				delete(want, r.Partition)
				left--
			}
		})
	}
	s.log.Info("bridge: Kafka recovery read the topic after the checkpoint", "group", s.group, "mirrored_records", found, "documents", len(s.seen))
	return nil
}
