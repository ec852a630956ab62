package kvstate_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/kvstate"
	"github.com/palimpsest-editor/palimpsest/projections/projtest"
)

var id atomic.Int64

func TestConformance(t *testing.T) {
	srv, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	projtest.StateSuite(t, func(t *testing.T) projections.StateBackend {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n := id.Add(1)
		l, err := eventlog.Connect(ctx, srv.ClientURL(), eventlog.Config{Stream: fmt.Sprintf("S%d", n), SubjectPrefix: fmt.Sprintf("s%d", n), MarksBucket: fmt.Sprintf("m%d", n)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		b, err := kvstate.Open(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
