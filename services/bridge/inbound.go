package bridge

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// Inbound appends the records AWS-side producers write to the Kafka topic
// to the log, so both sides can run during a migration:
//
//	for {
//		records := poll()                       // consumer group, partitions in offset order
//		skip records with palimpsest-origin     // the bridge's own: no echo loop
//		refused (ParseRecord) → DLQ topic, with palimpsest-dlq-reason
//		the rest → Append per document, in record order, Origin "kafka"
//		commit the offsets                      // only after the log and the DLQ acknowledged
//	}
//
// A record read twice (a crash before the commit) is appended once: the log
// deduplicates by op id and by site counter. The outbound Kafka sink does not
// mirror ops whose origin is "kafka", so an AWS op is on the topic once.
type Inbound struct {
	l   *eventlog.Log
	kc  KafkaConfig
	cl  *kgo.Client
	log *slog.Logger
	m   *Metrics
}

// NewInbound joins the consumer group kc.Group on kc.Topic. A new group
// starts at the topic's earliest record.
func NewInbound(l *eventlog.Log, kc KafkaConfig, logger *slog.Logger, m *Metrics) (*Inbound, error) {
	kc, err := kc.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	cl, err := kgo.NewClient(kc.clientOpts(
		kgo.ConsumerGroup(kc.Group),
		kgo.ConsumeTopics(kc.Topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DefaultProduceTopic(kc.DLQTopic),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return nil, err
	}
	return &Inbound{l: l, kc: kc, cl: cl, log: logger, m: m}, nil
}

// Close leaves the group and closes the client.
func (in *Inbound) Close() { in.cl.Close() }

// Run consumes until ctx ends, then returns nil.
func (in *Inbound) Run(ctx context.Context) error {
	defer in.cl.AllowRebalance() // BlockRebalanceOnPoll: without it, Close would wait forever
	for ctx.Err() == nil {
		fs := in.cl.PollRecords(ctx, 1000)
		if fs.IsClientClosed() || ctx.Err() != nil {
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				in.log.Warn("bridge: inbound fetch", "topic", t, "partition", p, "err", err)
			}
		})
		recs := fs.Records()
		if len(recs) > 0 {
			if !in.handle(ctx, recs) {
				break
			}
			bo := newBackoff()
			for {
				err := in.cl.CommitRecords(ctx, recs...)
				if err == nil {
					break
				}
				in.log.Warn("bridge: inbound commit; retrying", "err", err)
				if !bo.wait(ctx) {
					break
				}
			}
		}
		in.cl.AllowRebalance()
	}
	return nil
}

// handle appends the good records, dead-letters the bad ones, and returns
// when both are acknowledged (true) or ctx ended (false).
func (in *Inbound) handle(ctx context.Context, recs []*kgo.Record) bool {
	type docOps struct {
		ops  []eventlog.Op
		recs []*kgo.Record
	}
	byDoc := map[string]*docOps{}
	var order []string
	var dead []*kgo.Record
	for _, r := range recs {
		if o, _ := header(r, HeaderOrigin); o == OriginPalimpsest {
			in.m.Inbound.WithLabelValues("echo").Inc()
			continue
		}
		op, doc, err := ParseRecord(r.Key, r.Value)
		if err != nil {
			in.log.Warn("bridge: inbound record refused; to the dead letters", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			dead = append(dead, dlqRecord(in.kc.DLQTopic, r, err))
			continue
		}
		d := byDoc[doc]
		if d == nil {
			d = &docOps{}
			byDoc[doc] = d
			order = append(order, doc)
		}
		d.ops = append(d.ops, op)
		d.recs = append(d.recs, r)
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, doc := range order {
		d := byDoc[doc]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			refused := in.appendDoc(ctx, doc, d.ops, d.recs)
			mu.Lock()
			dead = append(dead, refused...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return false
	}
	if len(dead) == 0 {
		return true
	}
	bo := newBackoff()
	for {
		err := in.cl.ProduceSync(ctx, dead...).FirstErr()
		if err == nil {
			in.m.Inbound.WithLabelValues("dead_letter").Add(float64(len(dead)))
			return true
		}
		in.log.Warn("bridge: produce dead letters; retrying", "topic", in.kc.DLQTopic, "err", err)
		if !bo.wait(ctx) {
			return false
		}
	}
}

// appendDoc appends doc's ops in order, in chunks of at most the log's
// batch size, retrying what the log could not take now. It returns the dead
// letters of ops the log refuses for good (an op too large, say).
func (in *Inbound) appendDoc(ctx context.Context, doc string, ops []eventlog.Op, recs []*kgo.Record) []*kgo.Record {
	var dead []*kgo.Record
	chunk := in.l.Config().MaxBatch
	for i := 0; i < len(ops); {
		n := min(chunk, len(ops)-i)
		res, err := in.append(ctx, doc, ops[i:i+n])
		switch {
		case err == nil:
			in.count(res)
		case ctx.Err() != nil:
			return dead
		case n > 1:
			// One op spoils the batch: go one by one to find it.
			chunk = 1
			continue
		default:
			in.log.Warn("bridge: inbound op refused by the log; to the dead letters", "doc", doc, "op", ops[i].ID, "err", err)
			dead = append(dead, dlqRecord(in.kc.DLQTopic, recs[i], err))
		}
		i += n
	}
	return dead
}

// append appends ops, retrying while the log is unavailable; it returns the
// error of a refusal that retrying cannot fix.
func (in *Inbound) append(ctx context.Context, doc string, ops []eventlog.Op) ([]eventlog.Appended, error) {
	bo := newBackoff()
	for {
		res, err := in.l.Append(ctx, doc, eventlog.Any, ops...)
		if err == nil || permanent(err) {
			return res, err
		}
		in.log.Warn("bridge: inbound append; retrying", "doc", doc, "ops", len(ops), "err", err)
		if !bo.wait(ctx) {
			return nil, ctx.Err()
		}
	}
}

func (in *Inbound) count(res []eventlog.Appended) {
	for _, r := range res {
		if r.Duplicate {
			in.m.Inbound.WithLabelValues("duplicate").Inc()
		} else {
			in.m.Inbound.WithLabelValues("appended").Inc()
		}
	}
}

// permanent reports whether the log refused an append for a reason that
// retrying cannot change.
func permanent(err error) bool {
	switch schemas.CodeOf(err) {
	case schemas.CodeBadEvent, schemas.CodeBadDocumentID, schemas.CodeTooLarge, schemas.CodeBadOp:
		return true
	}
	return false
}
