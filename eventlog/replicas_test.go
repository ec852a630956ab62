package eventlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/natstest"
)

// A log opened on a cluster without Replicas is R3: the binaries (serve, projector) pass no
// Replicas, and a deployment's 3-node cluster must survive losing a node.
func TestDefaultReplicasInACluster(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := eventlog.Connect(ctx, c.URL(), eventlog.Config{Stream: "DEFAULTR", SubjectPrefix: "defaultr", MarksBucket: "marks_defaultr"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Config().Replicas; got != 3 {
		t.Errorf("Config().Replicas = %d on a cluster, want 3", got)
	}
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "DEFAULTR")
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Errorf("stream replicas %d, want 3", r)
	}
}
