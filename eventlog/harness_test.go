package eventlog_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/natstest"
)

func TestMain(m *testing.M) {
	natstest.RunNodeIfChild()
	code := m.Run()
	if benchSrv != nil {
		benchSrv.Shutdown()
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// backend is a server setup the conformance suite runs against.
type backend struct {
	name     string
	url      string
	replicas int
	// restart stops every server (embedded: shutdown; cluster: SIGKILL) and
	// starts it again on the same ports and data.
	restart func(t *testing.T)
}

// embedded starts an embedded server listening on a random loopback port.
func embedded(t *testing.T) *backend {
	dir := t.TempDir()
	s, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	url := s.ClientURL()
	port := 0
	fmt.Sscanf(url[strings.LastIndex(url, ":")+1:], "%d", &port)
	cur := s
	t.Cleanup(func() { cur.Shutdown() })
	return &backend{name: "embedded", url: url, replicas: 1, restart: func(t *testing.T) {
		cur.Shutdown()
		s, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: dir, Port: port})
		if err != nil {
			t.Fatal(err)
		}
		cur = s
	}}
}

// cluster starts three nats-server processes forming a cluster.
func cluster(t *testing.T) (*backend, *natstest.Cluster) {
	c := natstest.StartCluster(t, 3)
	return &backend{name: "cluster", url: c.URL(), replicas: 3, restart: func(t *testing.T) {
		for _, n := range c.Nodes {
			n.Kill(t)
		}
		for _, n := range c.Nodes {
			n.Start(t)
		}
	}}, c
}

var layoutID atomic.Int64

// config returns a configuration with its own stream, subjects and bucket,
// so tests on one server do not see each other.
func (b *backend) config() eventlog.Config {
	id := layoutID.Add(1)
	return eventlog.Config{
		Stream:        fmt.Sprintf("T%d", id),
		SubjectPrefix: fmt.Sprintf("t%d", id),
		MarksBucket:   fmt.Sprintf("marks%d", id),
		Replicas:      b.replicas,
		Partitions:    8,
	}
}

// open opens a log with its own connection; it is closed when the test ends.
func (b *backend) open(t testing.TB, cfg eventlog.Config) *eventlog.Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := eventlog.Connect(ctx, b.url, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", b.name, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// eventually polls cond until it returns nil or the deadline passes, then
// fails with cond's last error.
func eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func op(site, counter uint32) eventlog.Op {
	return eventlog.Op{Site: site, Counter: counter, Payload: fmt.Appendf(nil, "op %d/%d payload....", site, counter)}
}

// readAll returns every event of doc.
func readAll(t testing.TB, l *eventlog.Log, doc string) []eventlog.Event {
	t.Helper()
	var evs []eventlog.Event
	err := l.Read(ctxT(t, 30*time.Second), doc, 0, 0, func(e eventlog.Event, err error) error {
		if err != nil {
			return err
		}
		evs = append(evs, e)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", doc, err)
	}
	return evs
}
