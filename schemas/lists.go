package schemas

import "encoding/binary"

// The primitives the generated code uses for the wire messages' bool and
// []bytes fields: a bool is one byte, 0 or 1; a list is a uvarint count
// followed by each item as a length-prefixed byte string.

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendList(b []byte, items [][]byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(items)))
	for _, p := range items {
		b = appendBytes(b, p)
	}
	return b
}

func (d *decoder) bool() bool {
	switch c := d.byte(); c {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("bool byte %d", c)
		return false
	}
}

// list reads a list of byte strings. Every item takes at least one byte, so
// a count above the bytes left is refused before anything is allocated. The
// items share one copy of their bytes; they do not alias d.buf.
func (d *decoder) list() [][]byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)-d.off) {
		d.fail("list of %d items in %d bytes", n, len(d.buf)-d.off)
		return nil
	}
	if n == 0 {
		return nil
	}
	start := d.off
	out := make([][]byte, n)
	for i := range out {
		out[i] = d.raw()
	}
	if d.err != nil {
		return nil
	}
	own := append([]byte(nil), d.buf[start:d.off]...)
	for i, p := range out {
		if len(p) == 0 {
			out[i] = nil
			continue
		}
		off := cap(d.buf[start:]) - cap(p)
		out[i] = own[off : off+len(p) : off+len(p)]
	}
	return out
}
