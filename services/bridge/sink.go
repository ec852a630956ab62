package bridge

import (
	"context"
	"errors"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
)

// Sink is one mirror of the log: Kafka or DynamoDB.
//
// Write stores events, given in log order, and returns nil only when every
// one of them is durably in the sink, or already was, or is deliberately not
// mirrored (counted in Written.Skipped). Events of one document must land in
// their order. After an error the caller writes the same events again, and
// after a crash a new process may write events that an earlier one already
// stored: a sink makes repeats no-ops (its idempotency key is the document
// id and the event's sequence). One goroutine at a time calls Write.
type Sink interface {
	Name() string
	Write(ctx context.Context, events []eventlog.Event) (Written, error)
}

// ErrMisconfigured is wrapped by errors that waiting cannot fix: a missing
// table or topic the bridge may not create, a table with another key.
// Anything else at start-up (a server not reachable yet) is waited out.
var ErrMisconfigured = errors.New("bridge: misconfigured")

// Written counts what one Write did.
type Written struct {
	New     int // stored now
	Already int // found in the sink: an earlier attempt stored it
	Skipped int // not for this sink (an op that came from Kafka, for the Kafka sink)
}

// Forgetter is a sink that keeps state about events not yet acknowledged in
// the log; Forget tells it every event up to through is acknowledged and will
// never be written again (except by an explicit replay).
type Forgetter interface {
	Forget(ctx context.Context, through uint64)
}

// backoff is a capped exponential delay.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff() *backoff { return &backoff{min: 50 * time.Millisecond, max: 2 * time.Second} }

// wait sleeps for the next delay, or returns false when ctx ends first.
func (b *backoff) wait(ctx context.Context) bool {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	t := time.NewTimer(b.cur)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (b *backoff) reset() { b.cur = 0 }
