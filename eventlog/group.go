package eventlog

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// DocOps is one document's ops for AppendGroup.
type DocOps struct {
	Doc string
	Ops []Op
}

// GroupResult is one document's outcome in AppendGroup: what Append would
// have returned for it.
type GroupResult struct {
	Res []Appended
	Err error
}

// AppendGroup appends the ops of several documents in one atomic JetStream
// batch: cross-document group commit. On a single server JetStream stages
// every atomic batch in a file store of its own, which costs several fsyncs;
// one batch for many documents shares that cost, where one batch per
// document pays it per document.
//
// Each document's ops are appended exactly as Append(ctx, doc, Any, ops...)
// would: exactly once (the document's marks and Nats-Msg-Id), in order, each
// document's first event carrying its expected last sequence, which JetStream
// checks per subject inside the batch. The result of groups[i] is res[i].
// When JetStream refuses the batch (a document moved on since its marks were
// read, a duplicate in the window, no leader, a timeout), nothing or
// everything of it is stored, and every document concerned is appended on
// its own by Append, so one document's outcome never depends on another's.
//
// Documents must be distinct; the ops of all of them together must fit in
// MaxBatch (else each document is appended on its own).
func (l *Log) AppendGroup(ctx context.Context, groups []DocOps) []GroupResult {
	res := make([]GroupResult, len(groups))
	fallback := map[int]bool{}
	var members []*groupMember
	total := 0
	seen := map[string]bool{}
	for i, g := range groups {
		if seen[g.Doc] {
			fallback[i] = true
			continue
		}
		seen[g.Doc] = true
		r, err := l.prepare(ctx, g.Doc, Any, g.Ops)
		if err != nil {
			res[i].Err = err
			continue
		}
		if len(g.Ops) == 0 {
			res[i].Res = []Appended{}
			continue
		}
		members = append(members, &groupMember{i: i, req: r})
		total += len(g.Ops)
	}
	if total > l.cfg.MaxBatch || len(members) < 2 {
		for _, m := range members {
			fallback[m.i] = true
		}
		members = nil
	}
	if len(members) > 0 {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			for _, m := range members {
				fallback[m.i] = true // Append reports the closed log.
			}
			members = nil
		} else {
			for _, m := range members {
				st := l.docs[groups[m.i].Doc]
				if st == nil {
					st = &docState{id: groups[m.i].Doc}
					l.docs[st.id] = st
				}
				m.st = st
			}
			l.wg.Add(1)
			defer l.wg.Done()
			l.mu.Unlock()
		}
	}
	if len(members) > 0 {
		// Lock in document order, so group commits never deadlock each other.
		slices.SortFunc(members, func(a, b *groupMember) int {
			switch {
			case a.st.id < b.st.id:
				return -1
			case a.st.id > b.st.id:
				return 1
			}
			return 0
		})
		for _, m := range members {
			m.st.mu.Lock()
		}
		if !l.commitGroup(ctx, res, members) {
			for _, m := range members {
				fallback[m.i] = true
			}
		}
		for _, m := range members {
			m.st.lastUse = time.Now()
			m.st.mu.Unlock()
		}
	}
	// Every document the batch did not settle is appended on its own, in
	// parallel: documents are independent.
	var wg sync.WaitGroup
	for i := range fallback {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].Res, res[i].Err = l.Append(ctx, groups[i].Doc, Any, groups[i].Ops...)
		}()
	}
	wg.Wait()
	return res
}

// groupMember is one document of a group commit.
type groupMember struct {
	i     int // index in the caller's groups
	st    *docState
	req   *request
	out   []Appended
	fresh []int // indices of the ops not yet in the log
}

// commitGroup deduplicates each member against its marks and publishes the
// fresh ops of all as one atomic batch. It reports whether every member was
// settled (res filled); false means nothing of the batch was stored or the
// outcome is unknown, and the caller appends each member on its own. Every
// member's st.mu is held.
func (l *Log) commitGroup(ctx context.Context, res []GroupResult, ms []*groupMember) bool {
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	nfresh := 0
	for _, p := range ms {
		st, ops := p.st, p.req.ops
		if len(st.blocked) > 0 {
			return false // The per-document path knows how to unblock and refuse.
		}
		if st.m == nil {
			if err := st.loadLocked(ctx, l); err != nil {
				return false
			}
		}
		p.out = make([]Appended, len(ops))
		var gap error
		if p.fresh, gap = dedup(st.id, st.m, ops, p.out); gap != nil {
			return false // Append checks the gap against the log's latest and refuses it.
		}
		nfresh += len(p.fresh)
	}
	if nfresh > 0 {
		last, err := l.publishGroup(ctx, ms, nfresh)
		if err != nil {
			return false
		}
		seq := last - uint64(nfresh) + 1
		for _, p := range ms {
			for _, i := range p.fresh {
				p.out[i].Seq = seq
				op := p.req.ops[i]
				p.st.m.fold(seq, op.Site, op.Counter, op.Span)
				seq++
			}
			p.st.unpersisted += len(p.fresh)
		}
	}
	for _, p := range ms {
		l.unblock(p.st, p.req.ops)
		res[p.i].Res = p.out
		if p.st.unpersisted >= l.cfg.MarksEvery {
			pctx, pcancel := context.WithTimeout(context.Background(), l.cfg.RequestTimeout)
			p.st.persistLocked(pctx, l)
			pcancel()
		}
	}
	return true
}

// publishGroup writes the fresh events of every part as one atomic batch,
// each part's events consecutive, its first one carrying the document's last
// sequence as Palimpsest-Prev and as the expected last subject sequence,
// and returns the sequence of the batch's last event.
func (l *Log) publishGroup(ctx context.Context, ms []*groupMember, n int) (uint64, error) {
	batchID := nuid.Next()
	k := 0
	var resp *nats.Msg
	for _, part := range ms {
		subj := l.subj.Publish(part.st.id)
		lastSeq := part.st.m.Seq
		for j, i := range part.fresh {
			k++
			m := nats.NewMsg(subj)
			m.Data = part.req.data[i]
			m.Header.Set(hdrMsgID, part.req.ids[i])
			if o := part.req.ops[i].Origin; o != "" {
				m.Header.Set(hdrOrigin, o)
			}
			if sp := part.req.ops[i].Span; sp > 0 {
				m.Header.Set(hdrSpan, strconv.FormatUint(uint64(sp), 10))
			}
			if j == 0 {
				m.Header.Set(hdrPrev, strconv.FormatUint(lastSeq, 10))
				m.Header.Set(hdrExpSubSeq, strconv.FormatUint(lastSeq, 10))
			} else {
				m.Header.Set(hdrPrev, prevInBatch)
			}
			m.Header.Set(hdrBatchID, batchID)
			m.Header.Set(hdrBatchSeq, strconv.Itoa(k))
			if k < n {
				if err := l.nc.PublishMsg(m); err != nil {
					return 0, err
				}
				continue
			}
			m.Header.Set(hdrCommit, "1")
			var err error
			if resp, err = l.nc.RequestMsgWithContext(ctx, m); err != nil {
				return 0, err
			}
		}
	}
	var ack pubAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, unavailable(err, "group commit: unreadable publish ack")
	}
	if ack.Error != nil {
		return 0, ack.Error
	}
	if ack.Seq == 0 || ack.Count != n || ack.Duplicate {
		return 0, unavailable(nil, "group commit: ack %q does not match a batch of %d", truncate(string(resp.Data)), n)
	}
	return ack.Seq, nil
}
