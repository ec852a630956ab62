package projections

import (
	"encoding/binary"
	"errors"
	"time"
)

// docStateVersion is the first byte of an encoded DocState.
const docStateVersion = 1

// AppendDocState appends d's binary encoding, without its Doc and Rev (the
// key and the store know those): a version byte, then uvarint version and
// ops, varint updated (Unix ns), then author, text and state, each
// length-prefixed. Adapters without columns (JetStream KV) store this.
func AppendDocState(buf []byte, d *DocState) []byte {
	buf = append(buf, docStateVersion)
	buf = binary.AppendUvarint(buf, d.Version)
	buf = binary.AppendUvarint(buf, d.Ops)
	buf = binary.AppendVarint(buf, d.Updated.UnixNano())
	for _, b := range [][]byte{[]byte(d.Author), []byte(d.Text), d.State} {
		buf = binary.AppendUvarint(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	return buf
}

// ErrBadDocState is returned by DecodeDocState for bytes it did not write.
var ErrBadDocState = errors.New("projections: malformed stored document state")

// DecodeDocState decodes what AppendDocState wrote; the result does not alias b.
func DecodeDocState(b []byte) (DocState, error) {
	var d DocState
	if len(b) == 0 || b[0] != docStateVersion {
		return d, ErrBadDocState
	}
	b = b[1:]
	var vals [2]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return d, ErrBadDocState
		}
		vals[i], b = v, b[n:]
	}
	t, n := binary.Varint(b)
	if n <= 0 {
		return d, ErrBadDocState
	}
	b = b[n:]
	var fields [3][]byte
	for i := range fields {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return d, ErrBadDocState
		}
		fields[i] = append([]byte(nil), b[n:n+int(l)]...)
		b = b[n+int(l):]
	}
	if len(b) != 0 {
		return d, ErrBadDocState
	}
	d.Version, d.Ops, d.Updated = vals[0], vals[1], time.Unix(0, t).UTC()
	d.Author, d.Text, d.State = string(fields[0]), string(fields[1]), fields[2]
	return d, nil
}
