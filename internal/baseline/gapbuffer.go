// Package baseline is the plain-text editor that CRDT benchmarks are measured against: a gap
// buffer of code points, with no identifiers, no history and no concurrency. A CRDT replaying
// a trace is reported as a multiple of the time this takes to replay the same trace.
//
//	var b baseline.Buffer
//	_ = b.Insert(0, "hello")
//	_ = b.Delete(1, 3) // b.String() == "ho"
package baseline

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrOutOfRange is returned, wrapped, for a position or count outside the text.
var ErrOutOfRange = errors.New("baseline: out of range")

// Buffer is a gap buffer of Unicode code points. Positions count code points. The zero value
// is an empty buffer ready to use. It is not safe for concurrent use.
//
// The text is buf[:gap] followed by buf[gapEnd:]. An edit first moves the gap to its
// position, which costs the distance moved, so edits near the previous one are cheap.
type Buffer struct {
	buf    []rune
	gap    int // first free slot
	gapEnd int // first used slot after the gap
}

// minGrow is the least free space a growing buffer adds.
const minGrow = 64

// Len returns the number of code points.
func (b *Buffer) Len() int { return len(b.buf) - (b.gapEnd - b.gap) }

// String returns the text.
func (b *Buffer) String() string {
	var sb strings.Builder
	sb.Grow(b.Len())
	for _, r := range b.buf[:b.gap] {
		sb.WriteRune(r)
	}
	for _, r := range b.buf[b.gapEnd:] {
		sb.WriteRune(r)
	}
	return sb.String()
}

// Insert inserts text before the code point at pos (at the end if pos == Len). An error
// leaves the buffer unchanged.
func (b *Buffer) Insert(pos int, text string) error {
	if pos < 0 || pos > b.Len() {
		return fmt.Errorf("%w: insert at %d in %d code points", ErrOutOfRange, pos, b.Len())
	}
	n := utf8.RuneCountInString(text)
	if n > b.gapEnd-b.gap {
		b.grow(n)
	}
	b.moveGap(pos)
	for _, r := range text {
		b.buf[b.gap] = r
		b.gap++
	}
	return nil
}

// Delete removes n code points starting at pos. An error leaves the buffer unchanged.
func (b *Buffer) Delete(pos, n int) error {
	if pos < 0 || n < 0 || pos > b.Len() || n > b.Len()-pos {
		return fmt.Errorf("%w: delete %d at %d in %d code points", ErrOutOfRange, n, pos, b.Len())
	}
	b.moveGap(pos)
	b.gapEnd += n
	return nil
}

// moveGap makes the gap start at pos, shifting the code points between.
func (b *Buffer) moveGap(pos int) {
	switch {
	case pos < b.gap:
		k := b.gap - pos
		copy(b.buf[b.gapEnd-k:b.gapEnd], b.buf[pos:b.gap])
		b.gap, b.gapEnd = pos, b.gapEnd-k
	case pos > b.gap:
		k := pos - b.gap
		copy(b.buf[b.gap:b.gap+k], b.buf[b.gapEnd:b.gapEnd+k])
		b.gap, b.gapEnd = pos, b.gapEnd+k
	}
}

// grow reallocates so that the gap holds at least need code points, at least doubling the
// capacity so that a run of inserts costs amortised constant time per code point.
func (b *Buffer) grow(need int) {
	size := max(2*len(b.buf), b.Len()+need+minGrow)
	buf := make([]rune, size)
	copy(buf, b.buf[:b.gap])
	tail := len(b.buf) - b.gapEnd
	copy(buf[size-tail:], b.buf[b.gapEnd:])
	b.buf, b.gapEnd = buf, size-tail
}
