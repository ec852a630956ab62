package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/internal/baseline"
	"github.com/palimpsest-editor/palimpsest/internal/cputime"
	"github.com/palimpsest-editor/palimpsest/internal/traces"
)

// measurement is what bench crdt reports for one trace. Times are the best of several runs.
type measurement struct {
	trace         string
	ops           int // CRDT ops the local replay produced
	chars         int // code points at the end
	baseline      time.Duration
	local         time.Duration
	remote        time.Duration // the ops the local replay made, applied
	wire          time.Duration // the same ops decoded from their encoding, applied
	encode        time.Duration
	decode        time.Duration
	snapshotBytes int
	opBytes       int // all ops, each encoded with AppendOp
	allocsPerOp   float64
	heapBytes     uint64 // live heap of one replica after the local replay
	stats         crdt.Stats
}

const (
	localSite  crdt.SiteID = 1
	remoteSite crdt.SiteID = 2
)

// measure times every way of replaying tr in count rounds and checks, once, that every way ends
// in the same state: the baseline and the CRDT hold tr.EndContent, and the remote replica and
// the decoded snapshot equal the local replica in text, identifiers and clock.
//
// Each round times every way once (see timed), one right after the other, and each way keeps
// its best round: on a shared machine a slow spell then slows the baseline and the replays
// alike, rather than only whichever was being timed, and the ratios stay put.
func measure(tr *traces.Trace, count int) (measurement, error) {
	m := measurement{trace: tr.Name}
	// First, while nothing else of this trace's measurement is on the heap: what one replica
	// holds after the local replay.
	m.heapBytes = liveHeap(func() any { d, _, _ := replayLocal(tr, false); return d })
	doc, ops, err := replayLocal(tr, true)
	if err != nil {
		return m, err
	}
	if doc.Text() != tr.EndContent {
		return m, fmt.Errorf("%s: CRDT replay differs from endContent", tr.Name)
	}
	m.ops, m.chars, m.stats = len(ops), doc.Len(), doc.Stats()
	// The ops wait encoded while the baseline and the local replay are timed: a heap full of
	// decoded ops would make those replays' garbage collections scan them, a cost that no
	// editor pays and the baseline, which allocates nothing, never does.
	wire := encodeOps(ops)
	m.opBytes = len(wire) - 4*len(ops)
	m.allocsPerOp = float64(mallocs(func() { _, _, _ = replayLocal(tr, false) })) / float64(len(ops))
	ops = nil
	if err := checkBaseline(tr); err != nil {
		return m, err
	}
	snap := doc.AppendSnapshot(nil)
	m.snapshotBytes = len(snap)
	if err := checkReplicas(tr, doc, wire, snap); err != nil {
		return m, err
	}

	forever := time.Duration(1<<63 - 1)
	m.baseline, m.local, m.remote, m.wire, m.encode, m.decode = forever, forever, forever, forever, forever, forever
	for range max(count, 1) {
		m.baseline = min(m.baseline, timed(func() { _ = tr.Replay(new(baseline.Buffer)) }))
		m.local = min(m.local, timed(func() { _, _, _ = replayLocal(tr, false) }))
		// Remote replay applies the ops the local replay made (the same again: it is
		// deterministic), then, apart, the same ops decoded from the wire, as a receiving editor
		// holds them: each with prefix strings of its own, cold in the cache, which costs the
		// comparisons more. Making them is not timed.
		_, ops, _ := replayLocal(tr, true)
		m.remote = min(m.remote, timed(func() { _, _ = replayRemote(ops) }))
		ops, _ = decodeOps(wire)
		m.wire = min(m.wire, timed(func() { _, _ = replayRemote(ops) }))
		ops = nil
		m.encode = min(m.encode, timed(func() { doc.AppendSnapshot(snap[:0]) }))
		m.decode = min(m.decode, timed(func() { _, _ = crdt.LoadSnapshot(snap, remoteSite, rand.NewPCG(2, 2)) }))
	}
	return m, nil
}

// checkReplicas checks that the ops the local replay made, applied as they are and decoded
// from wire, and the snapshot, decoded, each give a replica equal to doc.
func checkReplicas(tr *traces.Trace, doc *crdt.Doc, wire, snap []byte) error {
	_, ops, err := replayLocal(tr, true)
	if err != nil {
		return err
	}
	for _, kind := range []string{"remote", "wire"} {
		if kind == "wire" {
			if ops, err = decodeOps(wire); err != nil {
				return fmt.Errorf("%s: decoding the ops: %w", tr.Name, err)
			}
		}
		remote, err := replayRemote(ops)
		if err != nil {
			return fmt.Errorf("%s: %s replay: %w", tr.Name, kind, err)
		}
		if err := sameState(doc, remote); err != nil {
			return fmt.Errorf("%s: %s replica against local: %w", tr.Name, kind, err)
		}
	}
	loaded, err := crdt.LoadSnapshot(snap, remoteSite, rand.NewPCG(2, 2))
	if err != nil {
		return fmt.Errorf("%s: decoding the snapshot: %w", tr.Name, err)
	}
	if err := sameState(doc, loaded); err != nil {
		return fmt.Errorf("%s: decoded snapshot against local: %w", tr.Name, err)
	}
	return nil
}

// encodeOps encodes ops one after another, each with a 4-byte length.
func encodeOps(ops []crdt.Op) []byte {
	var wire []byte
	for i := range ops {
		at := len(wire)
		wire = crdt.AppendOp(append(wire, 0, 0, 0, 0), &ops[i])
		binary.BigEndian.PutUint32(wire[at:], uint32(len(wire)-at-4))
	}
	return wire
}

// decodeOps decodes what encodeOps wrote.
func decodeOps(wire []byte) ([]crdt.Op, error) {
	var ops []crdt.Op
	for len(wire) >= 4 {
		n := int(binary.BigEndian.Uint32(wire))
		op, err := crdt.DecodeOp(wire[4 : 4+n])
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
		wire = wire[4+n:]
	}
	return ops, nil
}

func checkBaseline(tr *traces.Trace) error {
	var b baseline.Buffer
	if err := tr.Replay(&b); err != nil {
		return err
	}
	if b.String() != tr.EndContent {
		return fmt.Errorf("%s: baseline replay differs from endContent", tr.Name)
	}
	return nil
}

// recorder is a traces.Editor that edits a crdt.Doc and, if keep is set, collects its ops.
type recorder struct {
	doc  *crdt.Doc
	keep bool
	ops  []crdt.Op
}

func (r *recorder) Insert(pos int, text string) error {
	op, err := r.doc.Insert(pos, text)
	r.record(op)
	return err
}

func (r *recorder) Delete(pos, n int) error {
	op, err := r.doc.Delete(pos, n)
	r.record(op)
	return err
}

func (r *recorder) record(op crdt.Op) {
	if r.keep && !op.IsZero() {
		r.ops = append(r.ops, op)
	}
}

// replayLocal replays tr into a new replica by local edits, as one user typing it would.
func replayLocal(tr *traces.Trace, keepOps bool) (*crdt.Doc, []crdt.Op, error) {
	r := &recorder{doc: crdt.New(localSite, rand.NewPCG(1, 1)), keep: keepOps}
	if keepOps {
		r.ops = make([]crdt.Op, 0, len(tr.Patches))
	}
	err := tr.Replay(r)
	return r.doc, r.ops, err
}

// replayRemote applies ops, in order, to a new replica, as a second user receiving them would:
// an editor that reads each op's changes and reuses their buffer.
func replayRemote(ops []crdt.Op) (*crdt.Doc, error) {
	d := crdt.New(remoteSite, rand.NewPCG(2, 2))
	var changes []crdt.Change
	for i := range ops {
		var err error
		if changes, err = d.ApplyTo(changes[:0], ops[i]); err != nil {
			return nil, fmt.Errorf("op %d: %w", i, err)
		}
	}
	return d, nil
}

// timed runs f twice and returns the CPU time the process spent on the second run (package
// cputime: on a shared machine, time waiting for a CPU is not the code's). The first run warms
// the caches and the heap for the second; a garbage collection between them keeps the first
// one's garbage from being charged to the second.
func timed(f func()) time.Duration {
	f()
	runtime.GC()
	start := cputime.Now()
	f()
	return cputime.Since(start)
}

// mallocs returns how many heap allocations f makes.
func mallocs(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// liveHeap returns how much the heap still holds, after a collection, of what f built and
// returned.
func liveHeap(f func() any) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return after.HeapAlloc - before.HeapAlloc
}
