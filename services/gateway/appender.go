package gateway

import (
	"context"
	"sync"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// appendReq is one batch of a connection on its way to the log.
type appendReq struct {
	ops  []eventlog.Op
	done chan struct{}
	res  []eventlog.Appended
	err  error
}

// wait returns the outcome once the log has answered.
func (r *appendReq) wait() ([]eventlog.Appended, error) {
	<-r.done
	return r.res, r.err
}

// appender is a document's writer in this process: it takes the batches of
// every local connection of the document in arrival order and appends them
// with at most one request to the log in flight, choosing how:
//
//   - fewer than BatchThreshold ops waiting: op by op. On a single server a
//     single op is one write and one fsync, while JetStream stages any atomic
//     batch of two or more messages in a file store of its own (a directory,
//     metadata and several fsyncs), which at a typing pace costs more than
//     the ops it carries;
//   - more: in atomic batches of up to the log's MaxBatch ops, whose staging
//     is then shared by many ops (group commit).
//
// A connection's batches stay in order because they enter one queue. The
// log's own exactly-once and per-site ordering guarantees hold either way.
type appender struct {
	h *hub

	mu     sync.Mutex
	queue  []*appendReq
	closed bool
	wake   chan struct{}
}

func newAppender(h *hub) *appender { return &appender{h: h, wake: make(chan struct{}, 1)} }

// submit queues ops; the request's done channel closes with the outcome.
func (a *appender) submit(ops []eventlog.Op) *appendReq {
	r := &appendReq{ops: ops, done: make(chan struct{})}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		r.err = a.closedErr()
		close(r.done)
		return r
	}
	a.queue = append(a.queue, r)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return r
}

// run appends until ctx ends; then it fails what is still queued, as
// unavailable (the client resends it).
func (a *appender) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			a.mu.Lock()
			q := a.queue
			a.queue, a.closed = nil, true
			a.mu.Unlock()
			for _, r := range q {
				r.err = a.closedErr()
				close(r.done)
			}
			return
		case <-a.wake:
		}
		for {
			a.mu.Lock()
			q := a.queue
			a.queue = nil
			a.mu.Unlock()
			if len(q) == 0 {
				break
			}
			a.commit(q)
		}
	}
}

// commit appends the queued requests, op by op or in atomic batches, and
// resolves them. After a failure the rest of the round fails with the same
// error: the log refuses later ops of a failed site anyway, and clients
// resend after a Nack.
func (a *appender) commit(q []*appendReq) {
	g := a.h.g
	l := g.cfg.Log
	n := 0
	for _, r := range q {
		n += len(r.ops)
		r.res = make([]eventlog.Appended, 0, len(r.ops))
	}
	ctx := context.Background()
	var err error
	if n < g.cfg.BatchThreshold {
		for _, r := range q {
			for i := range r.ops {
				var res []eventlog.Appended
				if res, err = l.Append(ctx, a.h.doc, eventlog.Any, r.ops[i]); err != nil {
					break
				}
				r.res = append(r.res, res...)
			}
			if err != nil {
				break
			}
		}
	} else {
		// Concatenate, append in chunks of MaxBatch, hand the results back.
		all := make([]eventlog.Op, 0, n)
		for _, r := range q {
			all = append(all, r.ops...)
		}
		res := make([]eventlog.Appended, 0, n)
		mb := l.Config().MaxBatch
		for i := 0; i < n && err == nil; i += mb {
			var part []eventlog.Appended
			if part, err = l.Append(ctx, a.h.doc, eventlog.Any, all[i:min(i+mb, n)]...); err == nil {
				res = append(res, part...)
			}
		}
		for _, r := range q {
			k := min(len(r.ops), len(res))
			r.res, res = append(r.res, res[:k]...), res[k:]
		}
	}
	for _, r := range q {
		if len(r.res) < len(r.ops) {
			r.err = err
		}
		close(r.done)
	}
}

func (a *appender) closedErr() error {
	return schemas.Errorf(schemas.CodeUnavailable, nil, "document %q closed on this server; resend", a.h.doc)
}
