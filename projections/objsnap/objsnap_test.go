package objsnap_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/objsnap"
	"github.com/palimpsest-editor/palimpsest/projections/projtest"
)

var id atomic.Int64

func TestConformance(t *testing.T) {
	srv, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := eventlog.Connect(ctx, srv.ClientURL(), eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	projtest.SnapshotSuite(t, func(t *testing.T) projections.SnapshotStore {
		s, err := objsnap.Open(ctx, l, fmt.Sprintf("snaps%d", id.Add(1)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
