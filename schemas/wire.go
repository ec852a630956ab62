package schemas

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"time"
	"unicode/utf8"
)

// The primitives of the binary encoding used by the generated code:
// unsigned integers as uvarints, times as zigzag varints of Unix nanoseconds,
// strings and byte slices as a uvarint length followed by the bytes.

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func checkString(field, s string, max int) error {
	if max > 0 && len(s) > max {
		return errorf(CodeBadEvent, nil, "%s: %d bytes, at most %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return errorf(CodeBadEvent, nil, "%s: not valid UTF-8", field)
	}
	return nil
}

// decoder reads the binary encoding. The first error sticks; later reads
// return zero values, so generated code checks once, at end.
type decoder struct {
	buf  []byte
	off  int
	what string
	err  error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = errorf(CodeBadEvent, nil, d.what+" at byte %d: "+format, append([]any{d.off}, args...)...)
	}
}

// version reads the version byte and checks it is in 1..max.
func (d *decoder) version(max byte) byte {
	if len(d.buf) == 0 {
		d.fail("empty")
		return 0
	}
	v := d.buf[0]
	if v < 1 || v > max {
		d.err = errorf(CodeUnsupportedVersion, nil, "%s: version %d, this build reads 1..%d", d.what, v, max)
		return 0
	}
	d.off = 1
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.buf) {
		d.fail("truncated")
		return 0
	}
	c := d.buf[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return x
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.buf[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return x
}

func (d *decoder) uint32() uint32 {
	x := d.uvarint()
	if x > math.MaxUint32 {
		d.fail("%d overflows uint32", x)
		return 0
	}
	return uint32(x)
}

// raw reads a length-prefixed run of bytes, aliasing d.buf.
func (d *decoder) raw() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)-d.off) {
		d.fail("length %d exceeds the %d bytes left", n, len(d.buf)-d.off)
		return nil
	}
	p := d.buf[d.off : d.off+int(n)]
	d.off += int(n)
	return p
}

func (d *decoder) string() string { return string(d.raw()) }

func (d *decoder) bytes() []byte {
	p := d.raw()
	if len(p) == 0 {
		return nil
	}
	return bytes.Clone(p)
}

// end returns the first error, or an error if bytes are left over.
func (d *decoder) end() error {
	if d.err == nil && d.off != len(d.buf) {
		d.fail("%d trailing bytes", len(d.buf)-d.off)
	}
	return d.err
}

// jsonTime is Unix nanoseconds shown as an RFC 3339 UTC time in the JSON view.
type jsonTime int64

func (t jsonTime) MarshalText() ([]byte, error) {
	return time.Unix(0, int64(t)).UTC().AppendFormat(nil, time.RFC3339Nano), nil
}

func (t *jsonTime) UnmarshalText(b []byte) error {
	tt, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return err
	}
	n := tt.UnixNano()
	if !time.Unix(0, n).Equal(tt) {
		return errorf(CodeBadEvent, nil, "time %s is outside the int64 nanosecond range", b)
	}
	*t = jsonTime(n)
	return nil
}

// strictJSON decodes exactly one JSON value, rejecting unknown fields.
func strictJSON(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errorf(CodeBadEvent, nil, "trailing data after the JSON value")
	}
	return nil
}
