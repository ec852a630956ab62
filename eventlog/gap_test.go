package eventlog_test

import (
	"errors"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
)

// spanOp is op(site, counter) spending span counters, as the gateway sets it.
func spanOp(site, counter, span uint32) eventlog.Op {
	o := op(site, counter)
	o.Span = span
	return o
}

// An op whose counter is not the next one of its site is refused with
// ErrCounterGap and nothing of its batch is appended; the check holds for
// another process (marks repaired from the log's Palimpsest-Span headers)
// and does not refuse an op that another process made the next one.
func testCounterGaps(t *testing.T, b *backend) {
	cfg := b.config()
	l := b.open(t, cfg)
	ctx := ctxT(t, 60*time.Second)
	const doc = "gaps"
	events := func() uint64 {
		last, err := l.LastSeq(ctx, doc)
		if err != nil && !errors.Is(err, eventlog.ErrUnknownDocument) {
			t.Fatal(err)
		}
		return last
	}
	mustGap := func(what string, ops ...eventlog.Op) {
		t.Helper()
		before := events()
		if _, err := l.Append(ctx, doc, eventlog.Any, ops...); !errors.Is(err, eventlog.ErrCounterGap) {
			t.Errorf("%s: %v, want ErrCounterGap", what, err)
		}
		if after := events(); after != before {
			t.Errorf("%s: the document's last sequence went from %d to %d", what, before, after)
		}
	}
	mustAppend := func(what string, ops ...eventlog.Op) {
		t.Helper()
		if _, err := l.Append(ctx, doc, eventlog.Any, ops...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	mustGap("a site's first op after counter 1", spanOp(2, 2, 1))
	mustAppend("an insert of 3 code points", spanOp(1, 1, 3))
	mustGap("an op skipping counter 4", spanOp(1, 5, 1))
	mustGap("an op reusing counter 3", spanOp(1, 3, 1))
	mustGap("a batch whose second op skips", spanOp(1, 4, 1), spanOp(1, 6, 1))
	mustAppend("the next two ops", spanOp(1, 4, 2), spanOp(1, 6, 1))
	if res, err := l.Append(ctx, doc, eventlog.Any, spanOp(1, 4, 2)); err != nil || !res[0].Duplicate {
		t.Errorf("a resent op: %+v, %v; want a duplicate", res, err)
	}
	mustAppend("an op without a span is not checked", op(9, 5))

	// Queued together: the good request is appended, the one with a gap
	// refused on its own.
	good, bad := l.AppendAsync(doc, spanOp(3, 1, 1)), l.AppendAsync(doc, spanOp(4, 7, 1))
	if _, err := good.Result(); err != nil {
		t.Errorf("a good request queued with a bad one: %v", err)
	}
	if _, err := bad.Result(); !errors.Is(err, eventlog.ErrCounterGap) {
		t.Errorf("a request with a gap queued with a good one: %v", err)
	}

	// Another process: its marks come from the bucket or the log.
	other := b.open(t, cfg)
	if _, err := other.Append(ctx, doc, eventlog.Any, spanOp(1, 8, 1)); !errors.Is(err, eventlog.ErrCounterGap) {
		t.Errorf("another process, an op skipping counter 7: %v", err)
	}
	if _, err := other.Append(ctx, doc, eventlog.Any, spanOp(1, 7, 4)); err != nil {
		t.Fatalf("another process, the next op: %v", err)
	}
	// This process's marks now lag the log: the next op is not a gap.
	mustAppend("the op after another process's", spanOp(1, 11, 1))
	mustGap("and the one after skips", spanOp(1, 13, 1))
	evs := readAll(t, l, doc)
	if last := evs[len(evs)-1]; last.Site != 1 || last.Counter != 11 || last.Span != 1 {
		t.Errorf("last event %+v, want site 1 counter 11 span 1", last)
	}
}
