package read

import (
	"context"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
)

// Change is one run of a Diff: Text was deleted from the From version at
// FromPos, or inserted so that it sits at ToPos in the To version. Positions
// count code points. Changes come in document order; applying them in order
// to From's text (deletes remove Text at FromPos, inserts add it; keep the
// text between them) gives To's text.
type Change struct {
	Op      string `json:"op"` // "insert" or "delete"
	FromPos int    `json:"from_pos"`
	ToPos   int    `json:"to_pos"`
	Text    string `json:"text"`
}

// Diff is what changed between two versions of a document.
type Diff struct {
	ID       string   `json:"id"`
	From     uint64   `json:"from"`
	To       uint64   `json:"to"`
	Inserted int      `json:"inserted"` // code points
	Deleted  int      `json:"deleted"`
	Changes  []Change `json:"changes"`
}

// elements is a state's identifiers and code points in document order.
type elements struct {
	ids   []crdt.ID
	runes []rune
}

func collect(d *crdt.Doc) elements {
	e := elements{ids: make([]crdt.ID, 0, d.Len()), runes: make([]rune, 0, d.Len())}
	d.IDs(func(id crdt.ID, r rune) bool {
		e.ids = append(e.ids, id)
		e.runes = append(e.runes, r)
		return true
	})
	return e
}

// elementsAt returns doc's elements at version v (v == 0: the empty
// document).
func (s *Service) elementsAt(ctx context.Context, doc string, v uint64) (elements, error) {
	if v == 0 {
		return elements{}, nil
	}
	st, err := s.checkout(ctx, doc, v)
	if err != nil {
		return elements{}, err
	}
	defer s.checkin(st)
	return collect(st.d), nil
}

// Diff compares doc at versions from and to (0: the empty document before
// its first event) by their identifiers: an element is one identifier for
// all its life, so identifiers only in from were deleted and identifiers
// only in to inserted, whatever happened in between. from may be after to.
func (s *Service) Diff(ctx context.Context, doc string, from, to uint64) (Diff, error) {
	if err := eventlog.ValidateDocID(doc); err != nil {
		return Diff{}, err
	}
	a, err := s.elementsAt(ctx, doc, from)
	if err != nil {
		return Diff{}, err
	}
	b, err := s.elementsAt(ctx, doc, to)
	if err != nil {
		return Diff{}, err
	}
	d := diffElements(a, b)
	d.ID, d.From, d.To = doc, from, to
	return d, nil
}

// diffElements merges two identifier sequences, both in document order.
func diffElements(a, b elements) Diff {
	d := Diff{Changes: []Change{}}
	var runes []rune // the open change's text
	open := -1       // index of the open change in d.Changes
	flush := func() {
		if open >= 0 {
			d.Changes[open].Text = string(runes)
			runes, open = runes[:0], -1
		}
	}
	add := func(op string, i, j int, r rune) {
		if open >= 0 {
			c := &d.Changes[open]
			n := len(runes)
			if c.Op == op && ((op == "delete" && c.FromPos+n == i && c.ToPos == j) || (op == "insert" && c.ToPos+n == j && c.FromPos == i)) {
				runes = append(runes, r)
				return
			}
			flush()
		}
		d.Changes = append(d.Changes, Change{Op: op, FromPos: i, ToPos: j})
		open = len(d.Changes) - 1
		runes = append(runes, r)
	}
	i, j := 0, 0
	for j < len(b.ids) {
		switch {
		case i < len(a.ids) && a.ids[i] < b.ids[j]:
			add("delete", i, j, a.runes[i])
			d.Deleted++
			i++
		case i < len(a.ids) && a.ids[i] == b.ids[j]:
			i, j = i+1, j+1
		default:
			add("insert", i, j, b.runes[j])
			d.Inserted++
			j++
		}
	}
	for ; i < len(a.ids); i++ {
		add("delete", i, j, a.runes[i])
		d.Deleted++
	}
	flush()
	return d
}
