package s3snap_test

import (
	"testing"

	"github.com/palimpsest-editor/palimpsest/internal/harness"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/projtest"
	"github.com/palimpsest-editor/palimpsest/projections/s3snap"
)

func TestMain(m *testing.M) { harness.Main(m) }

func TestConformance(t *testing.T) {
	projtest.SnapshotSuite(t, func(t *testing.T) projections.SnapshotStore {
		m := harness.SharedMinIO(t)
		c, err := m.Client()
		if err != nil {
			t.Fatal(err)
		}
		return s3snap.New(c, m.NewBucket(t), "snapshots/")
	})
}
