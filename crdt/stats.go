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
	d.elems.eachRun(func(r *run) bool {
		depth := len(r.prefix)/tripleSize + 1
		s.Elements += len(r.elems)
		total += depth * len(r.elems)
		s.MaxDepth = max(s.MaxDepth, depth)
		return true
	})
	if s.Elements > 0 {
		s.MeanDepth = float64(total) / float64(s.Elements)
		s.MeanIDBytes = s.MeanDepth * tripleSize
	}
	return s
}
