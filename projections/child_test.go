package projections_test

const envChild = "PALIMPSEST_PROJECTOR_CHILD"

func runChild() int { return 0 }
