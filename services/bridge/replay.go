package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
)

// Range is the part of the log a replay re-mirrors: sequences From to To,
// or, when Since is not zero, the events stored at or after Since up to To.
// To == 0 means the log's last event when the replay starts.
type Range struct {
	From  uint64
	Since time.Time
	To    uint64
}

// ReplayStats says what a replay did.
type ReplayStats struct {
	First, Last uint64 // the sequences replayed (0, 0: none)
	Events      int    // events handed to the sinks
	Bad         int    // stored events that did not decode
}

// Replay writes the events of r to sinks again, in log order, in batches of
// batch events, each batch to every sink (retrying each until it succeeds,
// as the bridge does) before the next. It does not touch the bridge's
// consumer. The DynamoDB sink's conditional puts make a replay into an
// intact table a no-op; a Kafka sink made for replaying (no checkpoint)
// produces every event again, which consumers that keep the last sequence
// of each document drop (docs/adr/0006). progress, if not nil, is called
// after each batch with the events done and the total.
func Replay(ctx context.Context, l *eventlog.Log, r Range, batch int, sinks []Sink, m *Metrics, logger *slog.Logger,
	progress func(done, total int64)) (ReplayStats, error) {
	var st ReplayStats
	if batch <= 0 {
		batch = 500
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if logger == nil {
		logger = slog.Default()
	}
	info, err := l.StreamInfo(ctx)
	if err != nil {
		return st, err
	}
	to := info.State.LastSeq
	if r.To != 0 && r.To < to {
		to = r.To
	}
	from := max(r.From, 1)
	if r.Since.IsZero() && from > to || !r.Since.IsZero() && (info.State.LastTime.Before(r.Since) || to == 0) {
		return st, nil // Nothing in the range.
	}
	sub, err := l.SubscribeAll(ctx, from, r.Since)
	if err != nil {
		return st, err
	}
	defer sub.Stop()
	var total int64
	for {
		evs := make([]eventlog.Event, 0, batch)
		end := false
		for len(evs) < batch && !end {
			ev, err := sub.Next(ctx)
			if err != nil && ev.Seq == 0 {
				return st, err
			}
			if st.First == 0 {
				st.First = ev.Seq
				total = int64(to - ev.Seq + 1)
			}
			if ev.Seq > to {
				// The range starts after To (a time past it).
				end = true
				break
			}
			st.Last = ev.Seq
			end = ev.Seq >= to
			if err != nil {
				st.Bad++
				logger.Error("bridge: replay: stored event does not decode; not mirrored", "seq", ev.Seq, "err", err)
				continue
			}
			evs = append(evs, ev)
		}
		if !writeAll(ctx, sinks, evs, m, logger, func(int) {}) {
			return st, fmt.Errorf("bridge: replay stopped at sequence %d: %w", st.Last, ctx.Err())
		}
		st.Events += len(evs)
		if progress != nil && st.Last >= st.First {
			progress(int64(st.Last-st.First+1), total)
		}
		if end {
			if st.Last < st.First {
				st.First, st.Last = 0, 0
			}
			return st, nil
		}
	}
}
