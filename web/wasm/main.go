//go:build js && wasm

// Command wasm is the browser's copy of Palimpsest's core: package crdt (the
// same LSEQ code the server runs) and the wire codec of package schemas,
// compiled with GOOS=js GOARCH=wasm. It sets globalThis.palimpsestCore to an
// object of plain functions and then blocks forever; web/src/core.ts wraps
// them in typed TypeScript. Positions here are code points; the editor
// converts its UTF-16 offsets at its edge (web/src/utf16.ts).
//
// Every function returns a value or a JavaScript Error object (never throws
// across the boundary); core.ts turns the Error into an exception.
package main

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"syscall/js"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/schemas"
	"github.com/palimpsest-editor/palimpsest/web/internal/textdiff"
)

var (
	jsError      = js.Global().Get("Error")
	jsUint8Array = js.Global().Get("Uint8Array")
	jsArray      = js.Global().Get("Array")
	jsObject     = js.Global().Get("Object")
)

func main() {
	core := jsObject.New()
	fns := map[string]func(args []js.Value) any{
		"newDoc":       newDoc,
		"loadSnapshot": loadSnapshot,
		"decodeOp":     decodeOp,
		"encodeHello":  encodeHello,
		"encodeSubmit": encodeSubmit,
		"encodePresence": func(a []js.Value) any {
			return frame(schemas.FramePresence, &schemas.Presence{Anchor: bytesOf(a[0].Get("anchor")), Head: bytesOf(a[0].Get("head"))})
		},
		"decodeFrame": decodeFrame,
	}
	for name, f := range fns {
		core.Set(name, wrap(f))
	}
	core.Set("version", schemas.Subprotocol)
	js.Global().Set("palimpsestCore", core)
	if ready := js.Global().Get("palimpsestCoreReady"); ready.Type() == js.TypeFunction {
		ready.Invoke(core)
	}
	select {}
}

// wrap turns a Go function into a JS function that returns an Error object
// instead of panicking.
func wrap(f func(args []js.Value) any) js.Func {
	return js.FuncOf(func(_ js.Value, args []js.Value) (out any) {
		defer func() {
			if r := recover(); r != nil {
				out = jsErr(fmt.Errorf("palimpsest core: %v", r))
			}
		}()
		return f(args)
	})
}

// jsErr returns a JS Error with the message and a code: the crdt or schemas
// code of err when it has one.
func jsErr(err error) js.Value {
	e := jsError.New(err.Error())
	if c := crdt.CodeOf(err); c != "" {
		e.Set("code", string(c))
	} else if c := schemas.CodeOf(err); c != 0 {
		e.Set("code", c.String())
	}
	return e
}

func bytesOf(v js.Value) []byte {
	if v.IsUndefined() || v.IsNull() {
		return nil
	}
	b := make([]byte, v.Get("length").Int())
	js.CopyBytesToGo(b, v)
	return b
}

func toJS(b []byte) js.Value {
	a := jsUint8Array.New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}

func bytesList(v js.Value) [][]byte {
	if v.IsUndefined() || v.IsNull() {
		return nil
	}
	out := make([][]byte, v.Length())
	for i := range out {
		out[i] = bytesOf(v.Index(i))
	}
	return out
}

func listToJS(l [][]byte) js.Value {
	a := jsArray.New(len(l))
	for i, b := range l {
		a.SetIndex(i, toJS(b))
	}
	return a
}

func u64(v js.Value) uint64 {
	if v.IsUndefined() || v.IsNull() {
		return 0
	}
	return uint64(v.Float())
}

func newRand() *rand.PCG {
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	return rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))
}

// newDoc(site) returns an empty document replica.
func newDoc(a []js.Value) any {
	return docObject(crdt.New(crdt.SiteID(uint32(a[0].Int())), newRand()))
}

// loadSnapshot(bytes, site) returns the replica a snapshot encodes.
func loadSnapshot(a []js.Value) any {
	d, err := crdt.LoadSnapshot(bytesOf(a[0]), crdt.SiteID(uint32(a[1].Int())), newRand())
	if err != nil {
		return jsErr(err)
	}
	return docObject(d)
}

// decodeOp(bytes) returns {site, counter, span, kind} of an encoded op.
func decodeOp(a []js.Value) any {
	op, err := crdt.DecodeOp(bytesOf(a[0]))
	if err != nil {
		return jsErr(err)
	}
	return map[string]any{"site": int(op.Site), "counter": int(op.Counter), "span": int(op.Span()), "kind": int(op.Kind)}
}

// docObject exposes one crdt.Doc. The functions stay alive until free().
func docObject(d *crdt.Doc) js.Value {
	o := jsObject.New()
	var funcs []js.Func
	set := func(name string, f func(args []js.Value) any) {
		fn := wrap(f)
		funcs = append(funcs, fn)
		o.Set(name, fn)
	}
	edit := func(op crdt.Op, err error) any {
		if err != nil {
			return jsErr(err)
		}
		if op.IsZero() {
			return js.Null()
		}
		return toJS(crdt.AppendOp(nil, &op))
	}
	set("site", func([]js.Value) any { return int(d.Site()) })
	set("len", func([]js.Value) any { return d.Len() })
	set("text", func([]js.Value) any { return d.Text() })
	// insert(pos, text) and delete(pos, n) edit locally and return the encoded op, or null.
	set("insert", func(a []js.Value) any { return edit(d.Insert(a[0].Int(), a[1].String())) })
	set("delete", func(a []js.Value) any { return edit(d.Delete(a[0].Int(), a[1].Int())) })
	// apply(op) folds in an encoded op and returns the changes as [kind, index, text] triples,
	// kind 1 inserted, 2 deleted, each applying to the text the previous one left.
	set("apply", func(a []js.Value) any {
		op, err := crdt.DecodeOp(bytesOf(a[0]))
		if err != nil {
			return jsErr(err)
		}
		cs, err := d.Apply(op)
		if err != nil {
			return jsErr(err)
		}
		return changesToJS(cs)
	})
	set("snapshot", func([]js.Value) any { return toJS(d.AppendSnapshot(nil)) })
	// idAt(pos) is the identifier of the code point at pos; indexOf(id) its position or -1.
	set("idAt", func(a []js.Value) any {
		id, err := d.IDAt(a[0].Int())
		if err != nil {
			return jsErr(err)
		}
		return toJS([]byte(id))
	})
	set("indexOf", func(a []js.Value) any {
		if i, ok := d.IndexOf(crdt.ID(bytesOf(a[0]))); ok {
			return i
		}
		return -1
	})
	// origins() returns the sites that inserted the text, as runs [site, length, site, length, ...].
	set("origins", func([]js.Value) any {
		var runs []any
		var cur crdt.SiteID
		n := 0
		d.IDs(func(id crdt.ID, _ rune) bool {
			s := id.Origin().Site
			if n > 0 && s != cur {
				runs = append(runs, int(cur), n)
				n = 0
			}
			cur = s
			n++
			return true
		})
		if n > 0 {
			runs = append(runs, int(cur), n)
		}
		return runs
	})
	// editTo(text) edits the document into text with local ops (a diff of code points) and
	// returns [ops, changes]: the encoded ops to send and the text changes to show, as apply's.
	set("editTo", func(a []js.Value) any {
		var ops [][]byte
		var cs []crdt.Change
		cur := []rune(d.Text())
		for _, e := range textdiff.Edits(cur, []rune(a[0].String())) {
			if e.Del > 0 {
				op, err := d.Delete(e.Pos, e.Del)
				if err != nil {
					return jsErr(err)
				}
				ops = append(ops, crdt.AppendOp(nil, &op))
				cs = append(cs, crdt.Change{Kind: crdt.Deleted, Index: e.Pos, Text: string(cur[e.Pos : e.Pos+e.Del])})
				cur = append(cur[:e.Pos], cur[e.Pos+e.Del:]...)
			}
			pos := e.Pos
			for _, part := range chunks(e.Ins, crdt.MaxOpElements) {
				op, err := d.Insert(pos, part)
				if err != nil {
					return jsErr(err)
				}
				ops = append(ops, crdt.AppendOp(nil, &op))
				cs = append(cs, crdt.Change{Kind: crdt.Inserted, Index: pos, Text: part})
				pos += len([]rune(part))
			}
			cur = append(cur[:e.Pos], append([]rune(e.Ins), cur[e.Pos:]...)...)
		}
		out := jsArray.New(2)
		out.SetIndex(0, listToJS(ops))
		out.SetIndex(1, changesToJS(cs))
		return out
	})
	set("free", func([]js.Value) any {
		for _, f := range funcs {
			defer f.Release()
		}
		return nil
	})
	return o
}

// chunks splits s into pieces of at most n code points; "" gives none.
func chunks(s string, n int) []string {
	r := []rune(s)
	var out []string
	for len(r) > 0 {
		k := min(len(r), n)
		out = append(out, string(r[:k]))
		r = r[k:]
	}
	return out
}

func changesToJS(cs []crdt.Change) js.Value {
	a := jsArray.New(len(cs))
	for i, c := range cs {
		t := jsArray.New(3)
		t.SetIndex(0, int(c.Kind))
		t.SetIndex(1, c.Index)
		t.SetIndex(2, c.Text)
		a.SetIndex(i, t)
	}
	return a
}

func frame(t schemas.FrameType, m schemas.Message) any {
	b, err := schemas.AppendFrame(nil, t, m)
	if err != nil {
		return jsErr(err)
	}
	return toJS(b)
}

// encodeHello({token, doc, lastSeq, site, batch, pending}) returns a Hello frame.
func encodeHello(a []js.Value) any {
	o := a[0]
	h := schemas.Hello{Doc: o.Get("doc").String(), LastSeq: u64(o.Get("lastSeq")),
		Site: uint32(u64(o.Get("site"))), Batch: u64(o.Get("batch")), Pending: bytesList(o.Get("pending"))}
	if t := o.Get("token"); t.Type() == js.TypeString {
		h.Token = t.String()
	}
	return frame(schemas.FrameHello, &h)
}

// encodeSubmit({batch, ops}) returns a Submit frame.
func encodeSubmit(a []js.Value) any {
	o := a[0]
	return frame(schemas.FrameSubmit, &schemas.Submit{Batch: u64(o.Get("batch")), Ops: bytesList(o.Get("ops"))})
}

// decodeFrame(bytes) returns a server frame as {type, ...fields}: type is the
// frame type's JSON name ("welcome", "event", ...).
func decodeFrame(a []js.Value) any {
	t, body, err := schemas.SplitFrame(bytesOf(a[0]))
	if err != nil {
		return jsErr(err)
	}
	out := map[string]any{"type": t.String()}
	switch t {
	case schemas.FrameWelcome:
		var m schemas.Welcome
		if err := m.UnmarshalBinary(body); err != nil {
			return jsErr(err)
		}
		out["doc"], out["site"], out["author"], out["write"] = m.Doc, int(m.Site), m.Author, m.Write
		out["head"], out["snapshotSeq"] = float64(m.Head), float64(m.SnapshotSeq)
		out["maxFrame"], out["maxOps"], out["maxOp"] = int(m.MaxFrame), int(m.MaxOps), int(m.MaxOp)
		out["expires"] = float64(m.Expires / 1e6)
		if len(m.Snapshot) > 0 {
			out["snapshot"] = toJS(m.Snapshot)
		}
	case schemas.FrameEvent:
		var m schemas.WireEvent
		if err := m.UnmarshalBinary(body); err != nil {
			return jsErr(err)
		}
		out["seq"], out["prev"], out["site"], out["counter"] = float64(m.Seq), float64(m.Prev), int(m.Site), int(m.Counter)
		out["author"], out["time"], out["op"] = m.Author, float64(m.Time/1e6), toJS(m.Op)
	case schemas.FrameAck:
		var m schemas.Ack
		if err := m.UnmarshalBinary(body); err != nil {
			return jsErr(err)
		}
		out["batch"], out["firstSeq"], out["lastSeq"] = float64(m.Batch), float64(m.FirstSeq), float64(m.LastSeq)
	case schemas.FrameNack:
		var m schemas.Nack
		if err := m.UnmarshalBinary(body); err != nil {
			return jsErr(err)
		}
		out["batch"], out["code"], out["codeText"], out["message"] = float64(m.Batch), int(m.Code), schemas.Code(m.Code).String(), m.Message
	case schemas.FramePresenceUpdate:
		var m schemas.PresenceUpdate
		if err := m.UnmarshalBinary(body); err != nil {
			return jsErr(err)
		}
		out["site"], out["user"], out["name"], out["gone"] = int(m.Site), m.User, m.Name, m.Gone
		out["anchor"], out["head"] = toJS(m.Anchor), toJS(m.Head)
	case schemas.FrameError:
		var m schemas.ErrorFrame
		if err := m.UnmarshalBinary(body); err != nil {
			return jsErr(err)
		}
		out["code"], out["codeText"], out["message"] = int(m.Code), schemas.Code(m.Code).String(), m.Message
	default:
		return jsErr(fmt.Errorf("palimpsest core: %v is not a server frame", t))
	}
	return out
}
