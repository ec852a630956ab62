package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PartitionConsumer is a durable pull consumer of one partition: a
// projector's position in that partition's events, kept by the server. It
// fetches in batches and acknowledges a batch with one ack (AckAll: acking
// sequence s acknowledges every earlier delivered event). One goroutine at a
// time may use it.
//
// The consumer is a hint, not the truth: callers keep their own checkpoint
// (see OpenPartitionConsumer) and must tolerate redelivery of events at or
// below it.
type PartitionConsumer struct {
	l    *Log
	name string
	p    int
	cons jetstream.Consumer
	// delivered is the consumer sequence of the last message received. The
	// server numbers its deliveries 1, 2, 3…; a jump means a message was
	// delivered to a pull request the client had already given up on (an
	// expiry race), and AckAll would silently acknowledge it later.
	delivered uint64
	lost      bool
	checked   time.Time // when the server's delivered count was last compared
	// last is how many events the previous Fetch returned; the next asks
	// for at most twice as many (see Fetch).
	last int
}

// minFetch is the fewest events a Fetch asks the server for.
const minFetch = 256

// ErrLostDelivery is returned by Fetch when the server delivered events
// this client never received. The consumer must be reopened at the
// caller's checkpoint (OpenPartitionConsumer), which delivers them again.
var ErrLostDelivery = errors.New("eventlog: the server delivered events this consumer did not receive; reopen it at the checkpoint")

// Batch is the outcome of one Fetch.
type Batch struct {
	// Events are the fetched events in log order.
	Events []Delivery
	// Lag is how many events of the partition remained after the last one.
	Lag  uint64
	c    *PartitionConsumer
	last jetstream.Msg
}

// Ack acknowledges this batch and every earlier one without waiting for the
// server (an ack lost on the way only means the events come again). Call
// it only after their effects are durable: an event not acknowledged is
// delivered again (to whoever owns the partition next).
func (b *Batch) Ack() error {
	if b.last == nil {
		return nil
	}
	if err := b.last.Ack(); err != nil {
		return classify(err, "consumer %s: ack", b.c.name)
	}
	return nil
}

// AckSync is Ack that waits for the server to confirm it.
func (b *Batch) AckSync(ctx context.Context) error {
	if b.last == nil {
		return nil
	}
	rctx, cancel := b.c.l.reqCtx(ctx)
	defer cancel()
	if err := b.last.DoubleAck(rctx); err != nil {
		return classify(err, "consumer %s: ack", b.c.name)
	}
	return nil
}

// Delivery is one fetched event. Err is non-nil (ErrBadEvent) when the stored
// message does not decode; Event.Seq and Data are set either way.
type Delivery struct {
	Event
	// Data is the stored message's payload, as written.
	Data []byte
	// Err says why the message is not a valid event.
	Err error
}

// PartitionConsumerConfig tunes OpenPartitionConsumer.
type PartitionConsumerConfig struct {
	// MaxAckPending bounds fetched, unacknowledged events; it must be at
	// least two fetches' worth. Default 65536.
	MaxAckPending int
	// AckWait is how long the server waits for an ack before redelivering.
	// Default 30 seconds.
	AckWait time.Duration
}

// OpenPartitionConsumer creates or opens the durable consumer name of
// partition p so that its next delivery is the partition's first event after
// sequence after (the caller's checkpoint). A consumer whose acknowledged and
// delivered positions both equal after is kept as it is; any other (ahead of
// the checkpoint, or with events delivered and not acknowledged, which the
// server would only redeliver after AckWait) is deleted and created again at
// after+1. So the checkpoint, not the consumer, decides where processing
// resumes, and the consumer keeps its delivery state in memory only
// (MemoryStorage): writing it to disk, synced, ten times a second per
// partition was a tenth of an embedded server's CPU and protected nothing.
// A consumer that lost its state in a server restart is found out by Fetch
// (ErrLostDelivery) or by the next open, and recreated at the checkpoint.
func (l *Log) OpenPartitionConsumer(ctx context.Context, name string, p int, after uint64, cfg PartitionConsumerConfig) (*PartitionConsumer, error) {
	if p < 0 || p >= l.cfg.Partitions {
		return nil, fmt.Errorf("eventlog: partition %d out of range 0..%d", p, l.cfg.Partitions-1)
	}
	if !validToken(name) {
		return nil, fmt.Errorf("eventlog: consumer name %q must be [A-Za-z0-9_-]+", name)
	}
	if cfg.MaxAckPending == 0 {
		cfg.MaxAckPending = 65536
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	cons, err := l.js.Consumer(rctx, l.cfg.Stream, name)
	switch {
	case err == nil:
		info := cons.CachedInfo()
		if info.Delivered.Stream == after && info.AckFloor.Stream == after && info.NumAckPending == 0 &&
			len(info.Config.FilterSubjects) == 0 && info.Config.FilterSubject == l.subj.Partition(p) &&
			info.Config.MaxAckPending == cfg.MaxAckPending && info.Config.MemoryStorage {
			return &PartitionConsumer{l: l, name: name, p: p, cons: cons, delivered: info.Delivered.Consumer}, nil
		}
		if err := l.js.DeleteConsumer(rctx, l.cfg.Stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, classify(err, "consumer %s: delete to reposition", name)
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, classify(err, "consumer %s", name)
	}
	cons, err = l.js.CreateOrUpdateConsumer(rctx, l.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   fmt.Sprintf("Palimpsest projector of partition %d", p),
		FilterSubject: l.subj.Partition(p),
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   after + 1,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: cfg.MaxAckPending,
		MaxWaiting:    16,
		Replicas:      l.cfg.Replicas,
		MemoryStorage: true,
	})
	if err != nil {
		return nil, classify(err, "consumer %s: create at sequence %d", name, after+1)
	}
	return &PartitionConsumer{l: l, name: name, p: p, cons: cons}, nil
}

// Fetch returns up to max events: as soon as its request is filled, or when
// wait has passed with fewer (none: an empty batch). The request is max, or
// less while the load is lower: twice as many events as the previous fetch
// returned, at least 256. A growing load is thus met in a few fetches, and a
// fetch's buffers follow the load, not max (16,384 slots a fetch on an idle
// partition were megabytes a second of garbage). One goroutine at a time may
// call Fetch; batches may be acknowledged from any goroutine, in order.
//
// The wait is the server's expiry of the pull request, not a client
// deadline. A client can still give up on a request the server is serving
// (nats.go stops listening a second after the last message, which a process
// starved of CPU can take): the server then counts events as delivered that
// nobody received. Fetch notices, from a gap in the consumer sequences or,
// after an empty fetch (at most once a second), from the server's count of
// deliveries, and returns ErrLostDelivery instead of ever passing that gap.
func (c *PartitionConsumer) Fetch(ctx context.Context, max int, wait time.Duration) (*Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.lost {
		return nil, ErrLostDelivery
	}
	n := 2 * c.last
	if n < minFetch {
		n = minFetch
	}
	if n > max {
		n = max
	}
	out := &Batch{c: c, Events: make([]Delivery, 0, min(n, minFetch))}
	b, err := c.cons.Fetch(n, jetstream.FetchMaxWait(wait))
	if err != nil {
		return nil, classify(err, "consumer %s: fetch", c.name)
	}
	err = c.collect(out, b)
	c.last = len(out.Events)
	if err != nil || len(out.Events) > 0 {
		return out, err
	}
	if time.Since(c.checked) < time.Second {
		return out, nil
	}
	c.checked = time.Now()
	rctx, cancel := c.l.reqCtx(ctx)
	defer cancel()
	info, err := c.cons.Info(rctx)
	if err != nil {
		return nil, classify(err, "consumer %s: info", c.name)
	}
	if info.Delivered.Consumer > c.delivered {
		c.lost = true
		return nil, ErrLostDelivery
	}
	return out, nil
}

func (c *PartitionConsumer) collect(out *Batch, b jetstream.MessageBatch) error {
	n := len(out.Events)
	for m := range b.Messages() {
		md, err := m.Metadata()
		if err != nil {
			return classify(err, "consumer %s: message metadata", c.name)
		}
		if md.Sequence.Consumer != c.delivered+1 || c.lost {
			// Keep what came before the gap; refuse everything after it.
			c.lost = true
			continue
		}
		c.delivered = md.Sequence.Consumer
		ev, derr := c.l.decode(md.Sequence.Stream, m.Subject(), m.Headers(), m.Data(), md.Timestamp)
		out.Events = append(out.Events, Delivery{Event: ev, Data: m.Data(), Err: derr})
		out.Lag = md.NumPending
		out.last = m
	}
	if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && len(out.Events) == n {
		return classify(err, "consumer %s: fetch", c.name)
	}
	if c.lost && len(out.Events) == n {
		return ErrLostDelivery
	}
	return nil
}

// Pending returns how many of the partition's events the consumer has not
// delivered yet, as the server counts them.
func (c *PartitionConsumer) Pending(ctx context.Context) (uint64, error) {
	rctx, cancel := c.l.reqCtx(ctx)
	defer cancel()
	info, err := c.cons.Info(rctx)
	if err != nil {
		return 0, classify(err, "consumer %s: info", c.name)
	}
	return info.NumPending, nil
}
