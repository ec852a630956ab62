package projections_test

import (
	"testing"

	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/projtest"
)

func TestMemoryReadModelConformance(t *testing.T) {
	projtest.ReadModelSuite(t, func(t *testing.T) projections.ReadModel { return projections.NewMemoryReadModel(100) })
}
