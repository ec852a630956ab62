package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// appendReq is one batch of a connection on its way to the log.
type appendReq struct {
	doc  string
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

// committer is the process's writer to the log. It takes the batches of every
// connection in arrival order, one round at a time, and appends a round in
// the cheapest way for its size:
//
//   - fewer than BatchThreshold ops: batch by batch, documents in parallel
//     (a client's batch is one op at a typing pace). On a single server a
//     lone op is one write and one fsync, while JetStream
//     stages any atomic batch of two or more messages in a file store of its
//     own (a directory, metadata, several fsyncs);
//   - more: every document's ops in one atomic batch (eventlog.AppendGroup,
//     cross-document group commit, in batches of at most the log's MaxBatch
//     ops), so the staging is paid once per round, not once per document.
//
// A connection's batches stay in order: they enter one queue, a document's
// ops keep their order inside a round, and rounds do not overlap.
type committer struct {
	g *Gateway

	mu     sync.Mutex
	queue  []*appendReq
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

func newCommitter(g *Gateway) *committer {
	return &committer{g: g, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// submit queues ops of doc; the request's done channel closes with the outcome.
func (c *committer) submit(doc string, ops []eventlog.Op) *appendReq {
	r := &appendReq{doc: doc, ops: ops, done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		r.err = schemas.Errorf(schemas.CodeUnavailable, nil, "the server is shutting down; resend")
		close(r.done)
		return r
	}
	c.queue = append(c.queue, r)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return r
}

// run commits rounds until close; what is queued then is still committed.
func (c *committer) run() {
	defer close(c.done)
	for {
		<-c.wake
		for {
			c.mu.Lock()
			q, closed := c.queue, c.closed
			c.queue = nil
			c.mu.Unlock()
			if len(q) == 0 {
				if closed {
					return
				}
				break
			}
			c.round(q)
		}
	}
}

// close commits what is queued and stops.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
}

// docRound is one document's share of a round.
type docRound struct {
	doc  string
	reqs []*appendReq
	ops  []eventlog.Op
}

// round appends one round of requests and resolves them.
func (c *committer) round(q []*appendReq) {
	var docs []*docRound
	byDoc := map[string]*docRound{}
	n := 0
	for _, r := range q {
		d := byDoc[r.doc]
		if d == nil {
			d = &docRound{doc: r.doc}
			byDoc[r.doc] = d
			docs = append(docs, d)
		}
		d.reqs = append(d.reqs, r)
		d.ops = append(d.ops, r.ops...)
		n += len(r.ops)
	}
	l := c.g.cfg.Log
	ctx := context.Background()
	var wg sync.WaitGroup
	how := "group"
	if n < c.g.cfg.BatchThreshold {
		how = "each"
	}
	start := time.Now()
	defer func() {
		c.g.metrics.roundSeconds.WithLabelValues(how).Observe(time.Since(start).Seconds())
		c.g.metrics.roundOps.WithLabelValues(how).Observe(float64(n))
	}()
	if n < c.g.cfg.BatchThreshold {
		for _, d := range docs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.appendEach(ctx, l)
			}()
		}
		wg.Wait()
		return
	}
	// Group commit: documents into groups of at most MaxBatch ops; a
	// document with more goes alone, in several atomic batches.
	mb := l.Config().MaxBatch
	var group []*docRound
	size := 0
	flush := func(group []*docRound) {
		if len(group) == 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dops := make([]eventlog.DocOps, len(group))
			for i, d := range group {
				dops[i] = eventlog.DocOps{Doc: d.doc, Ops: d.ops}
			}
			for i, r := range l.AppendGroup(ctx, dops) {
				if errors.Is(r.Err, eventlog.ErrCounterGap) || errors.Is(r.Err, eventlog.ErrOutOfOrder) {
					// Nothing of the document was appended; refuse only the
					// batches at fault.
					group[i].appendEach(ctx, l)
					continue
				}
				group[i].resolve(r.Res, r.Err)
			}
		}()
	}
	for _, d := range docs {
		if len(d.ops) > mb {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := make([]eventlog.Appended, 0, len(d.ops))
				var err error
				for i := 0; i < len(d.ops) && err == nil; i += mb {
					var r []eventlog.Appended
					if r, err = l.Append(ctx, d.doc, eventlog.Any, d.ops[i:min(i+mb, len(d.ops))]...); err == nil {
						res = append(res, r...)
					}
				}
				d.resolve(res, err)
			}()
			continue
		}
		if size+len(d.ops) > mb {
			flush(group)
			group, size = nil, 0
		}
		group = append(group, d)
		size += len(d.ops)
	}
	flush(group)
	wg.Wait()
}

// appendEach appends the document's requests one by one and resolves each
// with its own outcome: a batch of one op is a single message, and a refused
// batch leaves nothing of itself in the log and fails no other batch (the
// log refuses the later ops of a site whose append failed: out_of_order).
func (d *docRound) appendEach(ctx context.Context, l *eventlog.Log) {
	for _, r := range d.reqs {
		r.res, r.err = l.Append(ctx, d.doc, eventlog.Any, r.ops...)
		close(r.done)
	}
}

// resolve hands a document's results back to its requests, in order; the
// requests the results do not cover fail with err.
func (d *docRound) resolve(res []eventlog.Appended, err error) {
	for _, r := range d.reqs {
		k := min(len(r.ops), len(res))
		r.res, res = res[:k:k], res[k:]
		if k < len(r.ops) {
			r.err = err
			if r.err == nil {
				r.err = schemas.Errorf(schemas.CodeInternal, nil, "the log answered %d of %d ops", k, len(r.ops))
			}
		}
		close(r.done)
	}
}
