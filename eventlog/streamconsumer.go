package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConsumer is a durable pull consumer of every document's events, in
// stream order: a mirror's (the Kafka/DynamoDB bridge's) position in the
// whole log, kept by the server. Acknowledging an event acknowledges every
// earlier one (AckAll), so the server's ack floor is exactly "everything up
// to here is done". One goroutine at a time may use it.
//
// Order guarantee: Fetch never returns an event before an earlier one that
// is not yet acknowledged. JetStream alone would break this after a lost
// delivery (a fetch reply lost with a connection, a crash of the previous
// owner): it redelivers the lost events only after AckWait, while newer ones
// flow. So the consumer is rewound to its ack floor when it is opened and
// whenever a delivery is missing (its consumer sequences are contiguous from
// each rewind) or a fetch failed: the server then delivers again from the
// first unacknowledged event, in order.
type StreamConsumer struct {
	l    *Log
	name string
	cons jetstream.Consumer

	nextDSeq uint64        // the consumer sequence the next delivery must carry
	last     jetstream.Msg // newest delivery not yet acknowledged
	rewind   bool          // rewind before the next fetch
}

// StreamDelivery is one fetched event. Err is non-nil (ErrBadEvent) when the
// stored message does not decode; Event.Seq is set either way.
type StreamDelivery struct {
	Event
	Err error
}

// StreamConsumerConfig tunes OpenStreamConsumer.
type StreamConsumerConfig struct {
	// StartSeq is the first sequence a newly created consumer delivers
	// (0 or 1: the log's first event). An existing consumer keeps its place.
	StartSeq uint64
	// AckWait is how long the server waits for an ack before it would
	// redeliver. Default 30 seconds. Order does not depend on it (see
	// StreamConsumer); a sink that stalls longer only wastes a redelivery.
	AckWait time.Duration
	// MaxAckPending bounds fetched, unacknowledged events. Default 4096.
	MaxAckPending int
	// Description is shown by `nats consumer info`.
	Description string
}

// OpenStreamConsumer creates the durable consumer name over every document,
// or opens it where it is, and rewinds it to its ack floor, so the next
// Fetch starts at the first event it has not acknowledged. Only one process
// should use a consumer at a time: a second one would see the same events.
func (l *Log) OpenStreamConsumer(ctx context.Context, name string, cfg StreamConsumerConfig) (*StreamConsumer, error) {
	if !validToken(name) {
		return nil, fmt.Errorf("eventlog: consumer name %q must be [A-Za-z0-9_-]+", name)
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxAckPending == 0 {
		cfg.MaxAckPending = 4096
	}
	want := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   cfg.Description,
		FilterSubject: l.subj.Prefix + ".p.*.doc.*",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: cfg.MaxAckPending,
		Replicas:      l.cfg.Replicas,
	}
	if cfg.StartSeq > 1 {
		want.DeliverPolicy, want.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.StartSeq
	}
	var cons jetstream.Consumer
	err := retryTransient(ctx, func() error {
		rctx, cancel := l.reqCtx(ctx)
		defer cancel()
		var err error
		cons, err = l.js.Consumer(rctx, l.cfg.Stream, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			cons, err = l.js.CreateConsumer(rctx, l.cfg.Stream, want)
			if errors.Is(err, jetstream.ErrConsumerExists) {
				cons, err = l.js.Consumer(rctx, l.cfg.Stream, name)
			}
		}
		return err
	})
	if err != nil {
		return nil, classify(err, "consumer %s", name)
	}
	if have := cons.CachedInfo().Config; have.FilterSubject != want.FilterSubject || have.AckPolicy != jetstream.AckAllPolicy {
		return nil, fmt.Errorf("eventlog: consumer %s exists with filter %q and ack policy %v; a stream consumer needs %q and AckAll",
			name, have.FilterSubject, have.AckPolicy, want.FilterSubject)
	}
	c := &StreamConsumer{l: l, name: name, cons: cons}
	if err := c.Rewind(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Name returns the consumer's durable name.
func (c *StreamConsumer) Name() string { return c.name }

// Rewind makes the server deliver again from the first event the consumer
// has not acknowledged; fetched, unacknowledged events are forgotten.
func (c *StreamConsumer) Rewind(ctx context.Context) error {
	err := retryTransient(ctx, func() error {
		rctx, cancel := c.l.reqCtx(ctx)
		defer cancel()
		_, err := c.l.js.ResetConsumer(rctx, c.l.cfg.Stream, c.name)
		return err
	})
	if err != nil {
		c.rewind = true
		return classify(err, "consumer %s: rewind", c.name)
	}
	c.nextDSeq, c.last, c.rewind = 1, nil, false
	return nil
}

// Fetch returns up to max events in stream order: at once what the server
// has, or else it waits up to wait for the first one and returns it with
// whatever followed. It returns no events and no error when nothing arrived.
// After an error the next Fetch rewinds first, so nothing is skipped.
func (c *StreamConsumer) Fetch(ctx context.Context, max int, wait time.Duration) ([]StreamDelivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.rewind || c.last != nil {
		// Events fetched and not acknowledged would otherwise be skipped.
		if err := c.Rewind(ctx); err != nil {
			return nil, err
		}
	}
	ds, err := c.fetch(ctx, max, 0)
	if err != nil || len(ds) > 0 || wait <= 0 {
		return ds, err
	}
	ds, err = c.fetch(ctx, 1, wait)
	if err != nil || len(ds) == 0 || max == 1 {
		return ds, err
	}
	more, err := c.fetch(ctx, max-1, 0)
	if err != nil {
		// The first event stands; the rewind before the next fetch
		// delivers the rest again.
		return ds, nil
	}
	return append(ds, more...), nil
}

// fetch pulls up to max events, without waiting when wait is 0.
func (c *StreamConsumer) fetch(ctx context.Context, max int, wait time.Duration) ([]StreamDelivery, error) {
	var b jetstream.MessageBatch
	var err error
	if wait == 0 {
		b, err = c.cons.FetchNoWait(max)
	} else {
		fctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		b, err = c.cons.Fetch(max, jetstream.FetchContext(fctx))
	}
	if err != nil {
		c.rewind = true
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, classify(err, "consumer %s: fetch", c.name)
	}
	var ds []StreamDelivery
	var gap error
	for m := range b.Messages() {
		if gap != nil {
			continue // Drain the batch; it is delivered again after the rewind.
		}
		md, err := m.Metadata()
		if err != nil {
			gap = classify(err, "consumer %s: message metadata", c.name)
			continue
		}
		if md.Sequence.Consumer != c.nextDSeq {
			gap = unavailable(nil, "consumer %s: delivery %d arrived, %d expected (a delivery was lost)", c.name, md.Sequence.Consumer, c.nextDSeq)
			continue
		}
		c.nextDSeq++
		ev, derr := c.l.decode(md.Sequence.Stream, m.Subject(), m.Headers(), m.Data(), md.Timestamp)
		ds = append(ds, StreamDelivery{Event: ev, Err: derr})
		c.last = m
	}
	if gap == nil {
		if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			gap = classify(err, "consumer %s: fetch", c.name)
		}
	}
	if gap != nil {
		c.rewind = true
		if len(ds) > 0 {
			// What arrived in order before the failure is good; the
			// rewind delivers the rest again.
			return ds, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, gap
	}
	return ds, nil
}

// Ack acknowledges every event fetched so far, and so every earlier event,
// and waits for the server to confirm it. Call it only after their effects
// are durable. If it fails, the next Fetch delivers the events again.
func (c *StreamConsumer) Ack(ctx context.Context) error {
	if c.last == nil {
		return nil
	}
	rctx, cancel := c.l.reqCtx(ctx)
	defer cancel()
	if err := c.last.DoubleAck(rctx); err != nil {
		c.rewind = true
		return classify(err, "consumer %s: ack", c.name)
	}
	c.last = nil
	return nil
}

// StreamConsumerState is where a stream consumer stands.
type StreamConsumerState struct {
	// Acked is the ack floor: every event at or below it is acknowledged.
	Acked uint64
	// Pending is how many events after the ack floor the consumer has not
	// acknowledged (its lag in events).
	Pending uint64
}

// State asks the server where the consumer stands.
func (c *StreamConsumer) State(ctx context.Context) (StreamConsumerState, error) {
	rctx, cancel := c.l.reqCtx(ctx)
	defer cancel()
	info, err := c.cons.Info(rctx)
	if err != nil {
		return StreamConsumerState{}, classify(err, "consumer %s: info", c.name)
	}
	return StreamConsumerState{Acked: info.AckFloor.Stream, Pending: info.NumPending + uint64(info.NumAckPending)}, nil
}

// SubscribeAll delivers every document's events live, in log order, from
// sequence from (0 or 1: the first event), or, when since is not zero, from
// the first event stored at or after since. It needs no durable state on the
// server; a replay of a range uses it.
func (l *Log) SubscribeAll(ctx context.Context, from uint64, since time.Time) (*Subscription, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{l.subj.Prefix + ".p.*.doc.*"},
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: max(from, 1)}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &since
	}
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	cons, err := l.js.OrderedConsumer(rctx, l.cfg.Stream, cfg)
	if err != nil {
		return nil, classify(err, "subscribe to every document")
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return nil, classify(err, "subscribe to every document")
	}
	return &Subscription{l: l, it: it}, nil
}
