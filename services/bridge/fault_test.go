package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/services/bridge"
)

// TestSIGKILLedBridgeRestartsWithoutLossOrDuplicates runs the bridge as its
// own process and SIGKILLs it three times while events flow, at different
// points of its progress; a new process takes over each time. In the end
// each sink holds every event exactly once, in per-document order.
func TestSIGKILLedBridgeRestartsWithoutLossOrDuplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	docs := docNames("k", 8)
	w := newWriter(e.log, 2)
	written := make(chan int, 1)
	go func() {
		written <- w.write(ctx, t, docs, 150, func() { time.Sleep(2 * time.Millisecond) }) // a steady stream
	}()

	logPath := filepath.Join(t.TempDir(), "bridge.log")
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("bridge processes' log:\n%s", b)
		}
	}()
	sinks := []string{bridge.SinkKafka, bridge.SinkDynamoDB}
	for _, at := range []int{100, 400, 700} {
		c := e.startChild(sinks, 25, logPath)
		eventually(t, time.Minute, fmt.Sprintf("the bridge mirrors %d events", at), func() error {
			k, err := e.kafkaSeqs("new-event")
			if err != nil {
				return err
			}
			d, err := e.dynamoSeqs(e.table)
			if err != nil {
				return err
			}
			if total(k) < at || total(d) < at {
				return fmt.Errorf("kafka has %d, dynamodb %d", total(k), total(d))
			}
			return nil
		})
		c.kill(t)
	}
	e.startChild(sinks, 25, logPath)
	n := <-written
	e.waitMirrored(t, docs, n, 2*time.Minute)

	b, _ := os.ReadFile(logPath)
	if !strings.Contains(string(b), "Kafka recovery read the topic") {
		t.Errorf("no restarted bridge read the topic after its checkpoint")
	}
}

// TestWaitsOutKafkaAndDynamoDBOutages stops Kafka (kfake) and then DynamoDB
// (dynalite) while events keep coming; the bridge waits and catches up, and
// nothing is lost or mirrored twice.
func TestWaitsOutKafkaAndDynamoDBOutages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.options(bridge.SinkKafka, bridge.SinkDynamoDB)
	e.runBridge(o)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	docs := docNames("o", 4)
	w := newWriter(e.log, 3)
	n := w.write(ctx, t, docs, 50, nil)
	e.waitMirrored(t, docs, n, time.Minute)

	// Kafka goes away: DynamoDB takes the next batch, Kafka's lag grows,
	// nothing is acknowledged.
	e.stopKafka()
	n += w.write(ctx, t, docs, 50, nil)
	eventually(t, time.Minute, "the bridge held up by Kafka", func() error {
		d, err := e.dynamoSeqs(e.table)
		if err != nil {
			return err
		}
		if total(d) <= 200 {
			return fmt.Errorf("dynamodb has %d events: the bridge has not fetched yet", total(d))
		}
		if lag := gauge(t, o.Registry, "palimpsest_bridge_lag_events", "sink", "kafka"); lag == 0 {
			return fmt.Errorf("kafka lag 0")
		}
		return nil
	})
	acked := gauge(t, o.Registry, "palimpsest_bridge_acked_sequence")
	e.startKafka()
	e.waitMirrored(t, docs, n, time.Minute)
	if a := gauge(t, o.Registry, "palimpsest_bridge_acked_sequence"); acked >= a {
		t.Fatalf("acked sequence %v after the outage, %v during it", a, acked)
	}

	// DynamoDB goes away: its writes fail and are retried.
	if err := e.dyn.Stop(); err != nil {
		t.Fatal(err)
	}
	n += w.write(ctx, t, docs, 50, nil)
	eventually(t, time.Minute, "DynamoDB writes failing", func() error {
		if errs := gauge(t, o.Registry, "palimpsest_bridge_sink_errors_total", "sink", "dynamodb"); errs == 0 {
			return fmt.Errorf("no DynamoDB errors yet")
		}
		return nil
	})
	if err := e.dyn.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitMirrored(t, docs, n, time.Minute)
	eventually(t, 30*time.Second, "lag back to 0", func() error {
		for _, s := range []string{"kafka", "dynamodb"} {
			if lag := gauge(t, o.Registry, "palimpsest_bridge_lag_events", "sink", s); lag != 0 {
				return fmt.Errorf("%s lag %v", s, lag)
			}
		}
		return nil
	})
}

// TestWaitsOutNATSRestart restarts the NATS server under the running bridge,
// twice, while events are appended: it reconnects, resumes at its first
// unacknowledged event and mirrors everything once.
func TestWaitsOutNATSRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.options(bridge.SinkKafka, bridge.SinkDynamoDB)
	e.runBridge(o)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	docs := docNames("n", 4)
	w := newWriter(e.log, 6)
	n := 0
	for round := range 3 {
		n += w.write(ctx, t, docs, 40, nil)
		if round < 2 {
			eventually(t, time.Minute, "the bridge under way", func() error {
				if a := gauge(t, o.Registry, "palimpsest_bridge_acked_sequence"); a == 0 {
					return fmt.Errorf("nothing acknowledged yet")
				}
				return nil
			})
			e.restartNATS()
		}
	}
	e.waitMirrored(t, docs, n, time.Minute)
}

// TestStartsBeforeDynamoDBAndRefusesAMissingTable: a server that is not up
// yet is waited for; a table the bridge may not create is an error at once.
func TestStartsBeforeDynamoDBAndRefusesAMissingTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	o := e.options(bridge.SinkDynamoDB)
	o.DynamoDB.Create = false
	if err := bridge.Run(ctx, o); !errors.Is(err, bridge.ErrMisconfigured) {
		t.Fatalf("Run without the table and without Create: %v, want ErrMisconfigured", err)
	}

	if err := e.dyn.Stop(); err != nil {
		t.Fatal(err)
	}
	o = e.options(bridge.SinkKafka, bridge.SinkDynamoDB)
	e.runBridge(o)
	docs := docNames("s", 3)
	n := newWriter(e.log, 7).write(ctx, t, docs, 20, nil)
	// The Kafka sink is set up first (it creates the topic), then the
	// bridge tries DynamoDB, and waits.
	eventually(t, time.Minute, "the bridge past Kafka, at DynamoDB", func() error {
		_, err := e.topicRecords("new-event")
		return err
	})
	if h := gauge(t, o.Registry, "palimpsest_bridge_acked_sequence"); h != 0 {
		t.Fatalf("acknowledged %v with DynamoDB down", h)
	}
	if err := e.dyn.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitMirrored(t, docs, n, time.Minute)
}
