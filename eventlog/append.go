package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// Any, as the expected sequence of Append, accepts whatever the document's
// last sequence is.
const Any = ^uint64(0)

// Op is one CRDT operation to append.
type Op struct {
	// ID is the client's id for the op, unique within the document. Default
	// "<site>-<counter>".
	ID string
	// Site and Counter identify the op's origin. One site's ops must be
	// appended in increasing counter order: an op whose counter is not above
	// the highest counter of its site already in the document is a duplicate.
	Site    uint32
	Counter uint32
	// Author is the authenticated user, stamped by the server.
	Author string
	// Payload is the op as encoded by package crdt; the log never reads it.
	Payload []byte
	// Origin, when set, names the system the op came from (the Kafka bridge
	// sets "kafka"); it is stored in header Palimpsest-Origin and read back
	// as Event.Origin. At most 32 bytes of [A-Za-z0-9_-]. Empty: this system.
	Origin string
	// Span is how many counters the op spends (crdt.Op.Span: an insert of k
	// code points k, a delete 1), stored in header Palimpsest-Span. When set,
	// the op's Counter must be the next one of its site in the document: the
	// counter after the last one the site's previous op spent, 1 for a site's
	// first op. An op that skips counters (or reuses spent ones) is refused
	// with ErrCounterGap, atomically with the append (the check runs against
	// the marks the write's expected sequence pins). 0: unknown, not checked.
	Span uint32
}

// Appended is the outcome of one op of an append.
type Appended struct {
	// Seq is the op's stream sequence. For a duplicate it is the sequence of
	// the copy already in the log, or 0 when the log no longer knows it
	// cheaply (an op older than its site's latest).
	Seq uint64
	// Duplicate is true when the op was already in the log and nothing was
	// written.
	Duplicate bool
}

// Future is the pending outcome of AppendAsync.
type Future struct {
	done chan struct{}
	res  []Appended
	err  error
}

// Done is closed when the outcome is known.
func (f *Future) Done() <-chan struct{} { return f.done }

// Result waits for the outcome and returns it, like Append.
func (f *Future) Result() ([]Appended, error) {
	<-f.done
	return f.res, f.err
}

// Wait is Result bounded by ctx. When ctx ends first the append goes on and
// its outcome is unknown to the caller; retrying the same ops is safe.
func (f *Future) Wait(ctx context.Context) ([]Appended, error) {
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *Future) resolve(res []Appended, err error) {
	f.res, f.err = res, err
	close(f.done)
}

type request struct {
	ctx    context.Context
	ops    []Op
	data   [][]byte // encoded events
	ids    []string // Nats-Msg-Id per op
	expect uint64
	fut    *Future
}

// docState is a document's append state in this process. The queue and
// draining are guarded by Log.mu; everything else by mu, which the drainer
// holds while it commits a batch.
type docState struct {
	id       string
	queue    []*request
	draining bool

	mu          sync.Mutex
	m           *marks // nil until loaded from the bucket
	kvRev       uint64
	unpersisted int
	lastUse     time.Time
	// blocked holds, per site, the lowest counter of an op that failed to
	// append. Until that op is appended again (or found in the log), later
	// ops of the site are refused, so a site's ops never land out of order.
	blocked map[uint32]uint32
}

// Append appends ops to document doc as one atomic batch, after the event
// with sequence expect (Any: after whatever is last), and returns each op's
// outcome in order. It returns after JetStream has acknowledged the batch:
// stored, synced and, in a cluster, replicated to a majority.
//
// Exactly once: ops already in the log are not written again and come back
// with Duplicate set, however long ago they were appended. Each op is
// published with Nats-Msg-Id "<doc>:<op id>" (caught by JetStream within the
// duplicate window) and checked against the document's marks, the highest
// counter of each site in its history (caught forever). The check and the
// write are one atomic step because the write carries the document's last
// sequence as Nats-Expected-Last-Subject-Sequence: if anything was appended
// since the marks were read, the server refuses the write, the log reads the
// new events into the marks and tries again.
//
// Errors: a *SequenceError (ErrWrongSequence) when expect is not Any and the
// document has moved past it, unless every op is a duplicate; ErrTooLarge
// for an op over MaxEventSize or more than MaxBatch ops; ErrBadDocumentID;
// ErrBadEvent for an op that cannot be encoded; ErrUnavailable when the server
// cannot be reached or has no leader. After ErrUnavailable or a cancelled ctx
// the outcome is unknown, and appending the same ops again is safe.
func (l *Log) Append(ctx context.Context, doc string, expect uint64, ops ...Op) ([]Appended, error) {
	f := l.submit(ctx, doc, expect, ops)
	return f.Wait(ctx)
}

// AppendAsync queues ops for document doc and returns at once. Queued ops of
// one document are appended in the order they were queued; calls queued
// while an earlier batch of the same document is in flight are coalesced into
// one atomic batch (group commit), and documents proceed in parallel. The
// ops of one call are always in one batch. Outcomes and errors are as for
// Append with expect Any.
func (l *Log) AppendAsync(doc string, ops ...Op) *Future {
	return l.submit(context.Background(), doc, Any, ops)
}

func (l *Log) submit(ctx context.Context, doc string, expect uint64, ops []Op) *Future {
	f := &Future{done: make(chan struct{})}
	r, err := l.prepare(ctx, doc, expect, ops)
	if err != nil {
		f.resolve(nil, err)
		return f
	}
	r.fut = f
	if len(ops) == 0 {
		f.resolve([]Appended{}, nil)
		return f
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		f.resolve(nil, errors.New("eventlog: append after Close"))
		return f
	}
	st := l.docs[doc]
	if st == nil {
		st = &docState{id: doc}
		l.docs[doc] = st
	}
	st.queue = append(st.queue, r)
	if !st.draining {
		st.draining = true
		l.wg.Add(1)
		go l.drain(st)
	}
	l.mu.Unlock()
	return f
}

// prepare validates and encodes ops; nothing invalid reaches the queue.
func (l *Log) prepare(ctx context.Context, doc string, expect uint64, ops []Op) (*request, error) {
	if err := ValidateDocID(doc); err != nil {
		return nil, err
	}
	if len(ops) > l.cfg.MaxBatch {
		return nil, schemas.Errorf(schemas.CodeTooLarge, nil, "document %q: %d ops in one append, at most %d", doc, len(ops), l.cfg.MaxBatch)
	}
	r := &request{ctx: ctx, ops: ops, expect: expect, data: make([][]byte, len(ops)), ids: make([]string, len(ops))}
	now := l.cfg.Now().UnixNano()
	for i, op := range ops {
		id := opID(op)
		if op.Span > 0 && uint64(op.Counter)+uint64(op.Span)-1 > 1<<32-1 {
			return nil, schemas.Errorf(schemas.CodeBadEvent, nil, "document %q op %q: counter %d and span %d exceed 32 bits", doc, id, op.Counter, op.Span)
		}
		ev := schemas.Event{Type: schemas.EventOp, Doc: doc, Site: op.Site, Counter: op.Counter,
			Author: op.Author, OpID: id, Time: now, Payload: op.Payload}
		b, err := ev.MarshalBinary()
		if err != nil {
			return nil, err
		}
		if op.Origin != "" && (len(op.Origin) > 32 || !validToken(op.Origin)) {
			return nil, schemas.Errorf(schemas.CodeBadEvent, nil, "document %q op %q: origin %q is not 1-32 bytes of [A-Za-z0-9_-]", doc, id, truncate(op.Origin))
		}
		r.ids[i] = doc + ":" + id
		// Headers take at most ~300 bytes: the message id, the sequences and the batch headers.
		if size := len(b) + len(r.ids[i]) + 300; size > int(l.cfg.MaxEventSize) {
			return nil, schemas.Errorf(schemas.CodeTooLarge, nil, "document %q op %q: about %d bytes, at most %d", doc, id, size, l.cfg.MaxEventSize)
		}
		r.data[i] = b
	}
	return r, nil
}

// drain commits st's queue batch by batch until it is empty.
func (l *Log) drain(st *docState) {
	defer l.wg.Done()
	for {
		l.mu.Lock()
		batch := l.takeBatch(st)
		if len(batch) == 0 {
			st.draining = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()

		st.mu.Lock()
		l.commit(st, batch)
		st.lastUse = time.Now()
		if st.unpersisted >= l.cfg.MarksEvery {
			ctx, cancel := context.WithTimeout(context.Background(), l.cfg.RequestTimeout)
			st.persistLocked(ctx, l)
			cancel()
		}
		st.mu.Unlock()
	}
}

// takeBatch removes the next batch from st's queue: one request with an
// explicit expected sequence, or consecutive Any requests up to MaxBatch ops.
// Requests whose context has ended are failed and skipped. l.mu is held.
func (l *Log) takeBatch(st *docState) []*request {
	var batch []*request
	n := 0
	for len(st.queue) > 0 {
		r := st.queue[0]
		if err := r.ctx.Err(); err != nil {
			st.queue = st.queue[1:]
			r.fut.resolve(nil, err)
			continue
		}
		if len(batch) > 0 && (r.expect != Any || batch[0].expect != Any || n+len(r.ops) > l.cfg.MaxBatch) {
			break
		}
		st.queue[0] = nil
		st.queue = st.queue[1:]
		batch = append(batch, r)
		n += len(r.ops)
	}
	return batch
}

// commit appends one batch and resolves its requests' futures. When one
// request's ops skip counters or belong to a blocked site, only that request
// is refused: the others are then committed one by one. st.mu is held.
func (l *Log) commit(st *docState, batch []*request) {
	if len(batch) > 1 && !l.commitBatch(st, batch, true) {
		for _, r := range batch {
			l.commitBatch(st, []*request{r}, false)
		}
		return
	}
	if len(batch) == 1 {
		l.commitBatch(st, batch, false)
	}
}

// commitBatch appends batch as one atomic batch and resolves its requests'
// futures. With split it resolves nothing and reports false when the batch
// was refused for a counter gap or a blocked site (ErrOutOfOrder): nothing
// was appended, and the caller commits its requests one by one, so only the
// ones at fault are refused.
func (l *Log) commitBatch(st *docState, batch []*request, split bool) bool {
	ops, data, ids := batch[0].ops, batch[0].data, batch[0].ids
	if len(batch) > 1 {
		ops, data, ids = nil, nil, nil
		for _, r := range batch {
			ops = append(ops, r.ops...)
			data = append(data, r.data...)
			ids = append(ids, r.ids...)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.RequestTimeout)
	defer cancel()
	if len(batch) == 1 { // A lone request also ends with its caller's context.
		ctx, cancel = context.WithTimeout(batch[0].ctx, l.cfg.RequestTimeout)
		defer cancel()
	}
	res := make([]Appended, len(ops))
	err := l.commitOps(ctx, st, batch[0].expect, ops, data, ids, res)
	if split && (errors.Is(err, ErrCounterGap) || errors.Is(err, ErrOutOfOrder)) {
		return false
	}
	if err != nil && !errors.Is(err, ErrOutOfOrder) && !errors.Is(err, ErrCounterGap) {
		for _, op := range ops {
			if c, ok := st.blocked[op.Site]; !ok || op.Counter < c {
				if st.blocked == nil {
					st.blocked = map[uint32]uint32{}
				}
				st.blocked[op.Site] = op.Counter
			}
		}
	}
	k := 0
	for _, r := range batch {
		if err != nil {
			r.fut.resolve(nil, err)
		} else {
			r.fut.resolve(res[k:k+len(r.ops):k+len(r.ops)], nil)
		}
		k += len(r.ops)
	}
	return true
}

func (l *Log) commitOps(ctx context.Context, st *docState, expect uint64, ops []Op, data [][]byte, ids []string, res []Appended) error {
	doc := st.id
	if st.m == nil {
		if err := st.loadLocked(ctx, l); err != nil {
			return err
		}
	}
	verified := false // st.m has been brought up to the server's last sequence
	wait := time.Millisecond
	for {
		fresh, gap := dedup(doc, st.m, ops, res)
		if gap != nil {
			if !verified {
				// The marks may lag the log (another process appended): a
				// gap is refused only against the log's latest.
				if err := l.repair(ctx, st, 0); err != nil {
					return err
				}
				verified = true
				continue
			}
			return gap
		}
		if len(fresh) == 0 {
			l.unblock(st, ops)
			return nil
		}
		if err := checkOrder(doc, st.blocked, ops); err != nil {
			return err
		}
		if expect != Any && expect != st.m.Seq {
			if !verified {
				if err := l.repair(ctx, st, 0); err != nil {
					return err
				}
				verified = true
				continue
			}
			return &SequenceError{Doc: doc, Expected: expect, Actual: st.m.Seq}
		}

		last, dupSeq, err := l.publish(ctx, doc, st.m.Seq, fresh, ops, data, ids)
		if err == nil && dupSeq == 0 {
			first := last - uint64(len(fresh)) + 1
			for k, i := range fresh {
				res[i].Seq = first + uint64(k)
				st.m.fold(first+uint64(k), ops[i].Site, ops[i].Counter, ops[i].Span)
			}
			st.unpersisted += len(fresh)
			l.unblock(st, ops)
			return nil
		}
		var apiErr *jetstream.APIError
		switch {
		case err == nil: // JetStream's own dedup: the op is in the log at dupSeq.
			if err := l.repair(ctx, st, dupSeq); err != nil {
				return err
			}
			continue
		case errors.As(err, &apiErr) && apiErr.ErrorCode == jsWrongLastSeq:
			actual, perr := parseLastSeq(apiErr.Description)
			if perr != nil {
				actual = 0
			}
			if actual != 0 && actual < st.m.Seq {
				// The log is behind the marks: they came from another stream
				// (recreated). Rebuild them from the log.
				l.cfg.Logger.Warn("eventlog: marks ahead of the log; rebuilding", "doc", doc, "marks_seq", st.m.Seq, "log_seq", actual)
				st.m = newMarks()
			}
			if err := l.repair(ctx, st, actual); err != nil {
				return err
			}
			verified = true
			continue
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == jsWrongLastSeqConstant || apiErr.ErrorCode == jsDuplicateInProcess ||
			apiErr.ErrorCode == jsBatchHasDuplicate || apiErr.ErrorCode == jsBatchIncomplete || apiErr.ErrorCode == jsBatchTooManyInflight):
			// Another write of this document (or of these ops) is in flight on
			// the server, or the batch was dropped: wait, catch up, retry.
			select {
			case <-ctx.Done():
				return unavailable(ctx.Err(), "document %q: append kept conflicting (%s)", doc, apiErr.Description)
			case <-time.After(time.Duration(rand.Int64N(int64(wait))) + wait/2):
			}
			wait = min(wait*2, 100*time.Millisecond)
			if err := l.repair(ctx, st, 0); err != nil {
				return err
			}
			continue
		default:
			return classify(err, "append to document %q", doc)
		}
	}
}

// dedup sets res for the ops already in the log (Duplicate, and Seq when
// the marks know it) and returns the indices of the others, in order. It
// refuses the whole batch with ErrCounterGap when a fresh op's counter is
// not the next one of its site (after the marks and the batch's earlier
// ops); nothing is to be appended then.
func dedup(doc string, m *marks, ops []Op, res []Appended) (fresh []int, gap error) {
	fresh = make([]int, 0, len(ops))
	type last struct{ counter, end uint32 } // end 0: unknown
	var inBatch map[uint32]last
	if len(ops) > 1 {
		inBatch = make(map[uint32]last, 1)
	}
	for i, op := range ops {
		res[i] = Appended{}
		hi, inB := inBatch[op.Site]
		if inB && op.Counter <= hi.counter {
			res[i].Duplicate = true
			continue
		}
		if sm, ok := m.Sites[op.Site]; ok && op.Counter <= sm.Counter {
			res[i].Duplicate = true
			if op.Counter == sm.Counter {
				res[i].Seq = sm.Seq
			}
			continue
		}
		if op.Span > 0 {
			want, known := m.next(op.Site)
			if inB {
				want, known = hi.end+1, hi.end != 0
			}
			if known && op.Counter != want {
				return nil, schemas.Errorf(schemas.CodeCounterGap, nil, "document %q site %d: op %q has counter %d, the site's next counter is %d",
					doc, op.Site, opID(op), op.Counter, want)
			}
		}
		if inBatch != nil {
			e := uint32(0)
			if op.Span > 0 {
				e = op.Counter + op.Span - 1
			}
			inBatch[op.Site] = last{op.Counter, e}
		}
		fresh = append(fresh, i)
	}
	return fresh, nil
}

// opID is op's id as the log stores it.
func opID(op Op) string {
	if op.ID != "" {
		return op.ID
	}
	return strconv.FormatUint(uint64(op.Site), 10) + "-" + strconv.FormatUint(uint64(op.Counter), 10)
}

// checkOrder refuses a batch with an op of a blocked site unless the batch
// also carries that site's blocking op (or an earlier one).
func checkOrder(doc string, blocked map[uint32]uint32, ops []Op) error {
	if len(blocked) == 0 {
		return nil
	}
	lowest := map[uint32]uint32{}
	for _, op := range ops {
		if c, ok := lowest[op.Site]; !ok || op.Counter < c {
			lowest[op.Site] = op.Counter
		}
	}
	for site, low := range lowest {
		if c, ok := blocked[site]; ok && low > c {
			return schemas.Errorf(schemas.CodeOutOfOrder, nil, "document %q site %d: the op with counter %d failed to append; resend from it before counter %d", doc, site, c, low)
		}
	}
	return nil
}

// unblock lifts the block of every site whose blocking op is among ops,
// now appended or found in the log. st.mu is held.
func (l *Log) unblock(st *docState, ops []Op) {
	for _, op := range ops {
		if c, ok := st.blocked[op.Site]; ok && op.Counter <= c {
			delete(st.blocked, op.Site)
		}
	}
}

// pubAck is JetStream's answer to a publish or an atomic batch commit.
type pubAck struct {
	Stream    string              `json:"stream"`
	Seq       uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate"`
	Count     int                 `json:"count"`
	Error     *jetstream.APIError `json:"error"`
}

// publish writes the events at fresh as one atomic batch after the
// document's event lastSeq, and returns the sequence of the last one; or,
// for a single event JetStream already had within its duplicate window,
// dupSeq, the sequence of that copy.
func (l *Log) publish(ctx context.Context, doc string, lastSeq uint64, fresh []int, ops []Op, data [][]byte, ids []string) (last, dupSeq uint64, err error) {
	subj := l.subj.Publish(doc)
	batchID := ""
	if len(fresh) > 1 {
		batchID = nuid.Next()
	}
	var resp *nats.Msg
	for k, i := range fresh {
		m := nats.NewMsg(subj)
		m.Data = data[i]
		m.Header.Set(hdrMsgID, ids[i])
		if ops[i].Origin != "" {
			m.Header.Set(hdrOrigin, ops[i].Origin)
		}
		if ops[i].Span > 0 {
			m.Header.Set(hdrSpan, strconv.FormatUint(uint64(ops[i].Span), 10))
		}
		if k == 0 {
			m.Header.Set(hdrPrev, strconv.FormatUint(lastSeq, 10))
			m.Header.Set(hdrExpSubSeq, strconv.FormatUint(lastSeq, 10))
		} else {
			m.Header.Set(hdrPrev, prevInBatch)
		}
		if batchID != "" {
			m.Header.Set(hdrBatchID, batchID)
			m.Header.Set(hdrBatchSeq, strconv.Itoa(k+1))
		}
		if k < len(fresh)-1 {
			if err := l.nc.PublishMsg(m); err != nil {
				return 0, 0, err
			}
			continue
		}
		if batchID != "" {
			m.Header.Set(hdrCommit, "1")
		}
		resp, err = l.nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return 0, 0, err
		}
	}
	var ack pubAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, 0, unavailable(err, "document %q: unreadable publish ack %q", doc, truncate(string(resp.Data)))
	}
	if ack.Error != nil {
		return 0, 0, ack.Error
	}
	if ack.Duplicate {
		return 0, ack.Seq, nil
	}
	if ack.Seq == 0 || (batchID != "" && ack.Count != len(fresh)) {
		return 0, 0, unavailable(nil, "document %q: publish ack %q does not match a batch of %d", doc, truncate(string(resp.Data)), len(fresh))
	}
	return ack.Seq, 0, nil
}

// parseLastSeq reads N out of "wrong last sequence: N".
func parseLastSeq(desc string) (uint64, error) {
	i := len(desc)
	for i > 0 && desc[i-1] >= '0' && desc[i-1] <= '9' {
		i--
	}
	return strconv.ParseUint(desc[i:], 10, 64)
}

// loadLocked reads st's marks from the bucket; a missing or unreadable entry
// starts empty marks, which repair fills from the log. st.mu is held.
func (st *docState) loadLocked(ctx context.Context, l *Log) error {
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	// A bucket just created in a cluster may not answer for a moment (no responders): such
	// errors are retried within the request's time.
	var e jetstream.KeyValueEntry
	err := retryTransient(rctx, func() error {
		var gerr error
		e, gerr = l.kv.Get(rctx, st.id)
		return gerr
	})
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		st.m, st.kvRev = newMarks(), 0
		return nil
	case err != nil:
		return classify(err, "document %q: read marks", st.id)
	}
	m, err := decodeMarks(e.Value())
	if err != nil {
		l.cfg.Logger.Warn("eventlog: unreadable marks; rebuilding from the log", "doc", st.id, "err", err)
		m = newMarks()
	}
	st.m, st.kvRev = m, e.Revision()
	return nil
}

// persistLocked writes st's marks to the bucket with a compare-and-set on
// the revision it last saw. When another process wrote newer marks it adopts
// them. A failure is logged and retried later: the marks in the bucket may
// lag the log, never lead it. st.mu is held.
func (st *docState) persistLocked(ctx context.Context, l *Log) {
	if st.m == nil || st.unpersisted == 0 {
		return
	}
	for range 3 {
		var rev uint64
		var err error
		if st.kvRev == 0 {
			rev, err = l.kv.Create(ctx, st.id, st.m.encode())
		} else {
			rev, err = l.kv.Update(ctx, st.id, st.m.encode(), st.kvRev)
		}
		if err == nil {
			st.kvRev, st.unpersisted = rev, 0
			return
		}
		var apiErr *jetstream.APIError
		if !errors.Is(err, jetstream.ErrKeyExists) && !(errors.As(err, &apiErr) && apiErr.ErrorCode == jsWrongLastSeq) {
			l.cfg.Logger.Warn("eventlog: write marks", "doc", st.id, "err", err)
			return
		}
		e, gerr := l.kv.Get(ctx, st.id)
		if gerr != nil {
			l.cfg.Logger.Warn("eventlog: read marks after a conflict", "doc", st.id, "err", gerr)
			return
		}
		st.kvRev = e.Revision()
		if other, derr := decodeMarks(e.Value()); derr == nil && other.Seq >= st.m.Seq {
			st.m, st.unpersisted = other, 0 // Another writer's marks are as new or newer.
			return
		}
	}
}

// flushLoop writes back the marks of idle documents and forgets documents
// idle for long.
func (l *Log) flushLoop() {
	defer l.wg.Done()
	t := time.NewTicker(max(l.cfg.MarksIdle/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		l.mu.Lock()
		var idle []*docState
		for id, st := range l.docs {
			if st.draining || len(st.queue) > 0 {
				continue
			}
			if st.mu.TryLock() {
				if st.unpersisted == 0 && now.Sub(st.lastUse) > 30*l.cfg.MarksIdle {
					delete(l.docs, id)
				} else if st.unpersisted > 0 && now.Sub(st.lastUse) >= l.cfg.MarksIdle {
					idle = append(idle, st)
					continue // Keep the lock.
				}
				st.mu.Unlock()
			}
		}
		l.mu.Unlock()
		for _, st := range idle {
			ctx, cancel := context.WithTimeout(context.Background(), l.cfg.RequestTimeout)
			st.persistLocked(ctx, l)
			cancel()
			st.mu.Unlock()
		}
	}
}
