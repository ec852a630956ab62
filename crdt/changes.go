package crdt

import "unicode/utf8"

// changes accumulates Changes, merging an insert or delete that continues the previous one.
// A one-code-point change costs no allocation for its text; longer ones are built in buf.
type changes struct {
	list  []Change
	base  int    // list[:base] is the caller's: never merged with
	buf   []byte // the last change's text, once it has more than one code point
	multi bool   // whether buf holds the last change's text
	count int    // code points in the last change
}

// asciiStrings holds the one-byte strings, so a typed character needs no allocation.
var asciiStrings = func() (t [utf8.RuneSelf]string) {
	for i := range t {
		t[i] = string(rune(i))
	}
	return t
}()

func runeString(r rune) string {
	if r < utf8.RuneSelf {
		return asciiStrings[r]
	}
	return string(r)
}

// continuing reports whether a change of kind at pos continues the last one. If it does, buf
// holds the last change's text for the caller to extend; if not, the last change is finished.
func (c *changes) continuing(kind ChangeKind, pos int) bool {
	n := len(c.list)
	if n <= c.base {
		return false
	}
	last := &c.list[n-1]
	if last.Kind == kind && ((kind == Inserted && pos == last.Index+c.count) ||
		(kind == Deleted && pos == last.Index)) {
		if !c.multi {
			c.buf = append(c.buf[:0], last.Text...)
			c.multi = true
		}
		return true
	}
	c.finish()
	return false
}

// add records that r was inserted or removed at pos.
func (c *changes) add(kind ChangeKind, pos int, r rune) {
	if c.continuing(kind, pos) {
		c.buf = utf8.AppendRune(c.buf, r)
		c.count++
		return
	}
	c.list = append(c.list, Change{Kind: kind, Index: pos, Text: runeString(r)})
	c.count = 1
}

// addElems records that the code points of es were inserted or removed at pos.
func (c *changes) addElems(kind ChangeKind, pos int, es []elem) {
	if len(es) == 1 {
		c.add(kind, pos, es[0].r)
		return
	}
	if !c.continuing(kind, pos) {
		c.list = append(c.list, Change{Kind: kind, Index: pos})
		c.buf, c.multi, c.count = c.buf[:0], true, 0
	}
	for _, e := range es {
		c.buf = utf8.AppendRune(c.buf, e.r)
	}
	c.count += len(es)
}

// addText records that text (count code points) was inserted or removed at pos.
func (c *changes) addText(kind ChangeKind, pos int, text string, count int) {
	if count == 1 {
		r, _ := utf8.DecodeRuneInString(text)
		c.add(kind, pos, r)
		return
	}
	if c.continuing(kind, pos) {
		c.buf = append(c.buf, text...)
		c.count += count
		return
	}
	c.list = append(c.list, Change{Kind: kind, Index: pos, Text: text})
	c.count = count
}

// finish gives the last change its full text.
func (c *changes) finish() {
	if c.multi {
		c.list[len(c.list)-1].Text = string(c.buf)
		c.multi = false
	}
}

func (c *changes) done() []Change {
	if len(c.list) > c.base {
		c.finish()
	}
	return c.list
}
