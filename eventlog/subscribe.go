package eventlog

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// Subscription delivers a document's or a partition's events live, in log
// order, from a starting sequence. It rides an ordered consumer, which the
// client recreates from the last delivered sequence after a reconnect or a
// server restart, so it neither skips nor repeats events.
type Subscription struct {
	l  *Log
	it jetstream.MessagesContext
}

// Subscribe delivers document doc's events with sequence >= from (0 or 1:
// from its first event), then each new one as it is appended.
func (l *Log) Subscribe(ctx context.Context, doc string, from uint64) (*Subscription, error) {
	if err := ValidateDocID(doc); err != nil {
		return nil, err
	}
	return l.subscribe(ctx, l.subj.Stored(doc), from)
}

// SubscribePartition delivers the events of every document in partition p
// with sequence >= from: a partition's worker uses it to own its documents.
func (l *Log) SubscribePartition(ctx context.Context, p int, from uint64) (*Subscription, error) {
	if p < 0 || p >= l.cfg.Partitions {
		return nil, errors.New("eventlog: partition out of range")
	}
	return l.subscribe(ctx, l.subj.Partition(p), from)
}

func (l *Log) subscribe(ctx context.Context, filter string, from uint64) (*Subscription, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: max(from, 1)}
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	cons, err := l.js.OrderedConsumer(rctx, l.cfg.Stream, cfg)
	if err != nil {
		return nil, classify(err, "subscribe %s", filter)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return nil, classify(err, "subscribe %s", filter)
	}
	return &Subscription{l: l, it: it}, nil
}

// Next waits for the next event. An event that does not decode comes with
// its Seq and an ErrBadEvent error, and the subscription goes on. Next
// returns ctx's error when ctx ends, and an error after Stop.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		m, err := s.it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				continue // The ordered consumer resets itself; keep waiting.
			}
			if ctx.Err() != nil {
				return Event{}, ctx.Err()
			}
			return Event{}, classify(err, "subscription")
		}
		md, err := m.Metadata()
		if err != nil {
			return Event{}, classify(err, "subscription")
		}
		return s.l.decode(md.Sequence.Stream, m.Subject(), m.Headers(), m.Data(), md.Timestamp)
	}
}

// Stop ends the subscription.
func (s *Subscription) Stop() { s.it.Stop() }
