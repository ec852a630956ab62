package eventlog

import (
	"context"
	"errors"
)

// Head returns the stream's last sequence: the newest version of the whole
// store (0 when it is empty).
func (l *Log) Head(ctx context.Context) (uint64, error) {
	info, err := l.StreamInfo(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// readAllWindow is how many ranges of readBatch sequences ReadAll has in
// flight at once.
const readAllWindow = 4

// ReadAll calls fn with every document's events whose sequences are in
// [from, to], in log order, as Read does for one document (an event that
// does not decode comes with an ErrBadEvent error and its Seq). Rebuilds use
// it: batched direct gets, several ranges of sequences in flight at once, no
// consumer state on the server.
func (l *Log) ReadAll(ctx context.Context, from, to uint64, fn func(Event, error) error) error {
	from = max(from, 1)
	if to < from {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	filter := l.subj.Prefix + ".p.*.doc.*"
	type result struct {
		evs  []Event
		errs []error
		err  error
	}
	next := from
	var pending []chan result
	launch := func() {
		if next > to {
			return
		}
		lo, hi := next, min(next+readBatch-1, to)
		next = hi + 1
		ch := make(chan result, 1)
		pending = append(pending, ch)
		go func() {
			var r result
			r.err = l.scan(ctx, filter, lo, nil, hi, func(ev Event, err error) error {
				if ev.Seq > hi {
					return errStop
				}
				r.evs, r.errs = append(r.evs, ev), append(r.errs, err)
				return nil
			})
			if errors.Is(r.err, errStop) {
				r.err = nil
			}
			ch <- r
		}()
	}
	for range readAllWindow {
		launch()
	}
	for len(pending) > 0 {
		r := <-pending[0]
		pending = pending[1:]
		if r.err != nil {
			return r.err
		}
		for i, ev := range r.evs {
			if err := fn(ev, r.errs[i]); err != nil {
				return err
			}
		}
		launch()
	}
	return nil
}
