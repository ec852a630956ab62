package crdt

// Stats describes the identifiers a document holds.
type Stats struct {
	Elements    int     // code points
	MeanDepth   float64 // levels per identifier
	MaxDepth    int
	MeanIDBytes float64 // in-memory bytes per identifier (12 a level)
}

// Stats walks the document once and summarises its identifiers.
func (d *Doc) Stats() Stats {
	var s Stats
	total := 0
	d.elems.each(func(id ID, _ rune) bool {
		s.Elements++
		total += id.Depth()
		s.MaxDepth = max(s.MaxDepth, id.Depth())
		return true
	})
	if s.Elements > 0 {
		s.MeanDepth = float64(total) / float64(s.Elements)
		s.MeanIDBytes = s.MeanDepth * tripleSize
	}
	return s
}
