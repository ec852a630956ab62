package eventlog

import "context"

// Head returns the stream's last sequence: the newest version of the whole
// store (0 when it is empty).
func (l *Log) Head(ctx context.Context) (uint64, error) {
	info, err := l.StreamInfo(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// ReadAll calls fn with every document's events whose sequences are in
// [from, to], in log order, as Read does for one document (an event that
// does not decode comes with an ErrBadEvent error and its Seq). Rebuilds use
// it: batched direct gets, no consumer state on the server.
func (l *Log) ReadAll(ctx context.Context, from, to uint64, fn func(Event, error) error) error {
	from = max(from, 1)
	if to < from {
		return nil
	}
	filter := l.subj.Prefix + ".p.*.doc.*"
	return l.scan(ctx, filter, from, nil, to, fn)
}
