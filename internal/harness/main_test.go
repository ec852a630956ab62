package harness_test

import (
	"testing"

	"github.com/palimpsest-editor/palimpsest/internal/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
