package eventlog

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// A pull request this consumer never reads (a client that gave up while
// the server was delivering) leaves a gap in the consumer sequences: Fetch
// refuses to go past it, and reopening at the checkpoint delivers the
// missed events again.
func TestPartitionConsumerLostDelivery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := StartServer(ServerConfig{DataDir: t.TempDir(), DontListen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	l, err := Open(ctx, nc, Config{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 10 {
		if _, err := l.Append(ctx, "d", Any, Op{Site: 1, Counter: uint32(i + 1), Payload: fmt.Appendf(nil, "op %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := l.OpenPartitionConsumer(ctx, "lost", 0, 0, PartitionConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Fetch(ctx, 3, time.Second)
	if err != nil || len(b.Events) != 3 {
		t.Fatalf("first fetch: %v, %v", b, err)
	}
	// Someone else's pull request takes events 4 and 5 and never reads them.
	sub, err := nc.SubscribeSync(nc.NewRespInbox())
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+l.cfg.Stream+".lost", sub.Subject, []byte(`{"batch":2,"no_wait":true}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	_ = sub.Unsubscribe()
	if _, err := c.Fetch(ctx, 10, time.Second); !errors.Is(err, ErrLostDelivery) {
		t.Fatalf("fetch after a lost delivery: %v, want ErrLostDelivery", err)
	}
	if err := b.AckSync(ctx); err != nil {
		t.Fatal(err)
	}
	c, err = l.OpenPartitionConsumer(ctx, "lost", 0, b.Events[2].Seq, PartitionConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := c.Fetch(ctx, 10, time.Second)
	if err != nil || len(b2.Events) != 7 || b2.Events[0].Seq != b.Events[2].Seq+1 {
		t.Fatalf("after reopening at the checkpoint: %d events from %v, %v", len(b2.Events), b2.Events, err)
	}

	// A whole batch lost shows no gap until the next delivery; the server's
	// count of deliveries gives it away at the next empty fetch.
	if _, err := l.Append(ctx, "d", Any, Op{Site: 1, Counter: 11, Payload: []byte("op 11")}); err != nil {
		t.Fatal(err)
	}
	if err := b2.AckSync(ctx); err != nil {
		t.Fatal(err)
	}
	sub2, err := nc.SubscribeSync(nc.NewRespInbox())
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+l.cfg.Stream+".lost", sub2.Subject, []byte(`{"batch":5,"no_wait":true}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := sub2.NextMsg(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	_ = sub2.Unsubscribe()
	if _, err := c.Fetch(ctx, 10, 50*time.Millisecond); !errors.Is(err, ErrLostDelivery) {
		t.Fatalf("empty fetch after a whole batch was lost: %v, want ErrLostDelivery", err)
	}
}
