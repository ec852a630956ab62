package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/internal/harness"
)

func TestBridgeFlagsFromEnvironment(t *testing.T) {
	t.Setenv("PALIMPSEST_KAFKA", "k1:9092,k2:9092")
	t.Setenv("PALIMPSEST_DYNAMODB", "http://dynamodb:8000")
	t.Setenv("PALIMPSEST_DYNAMODB_TABLE", "events")
	t.Setenv("PALIMPSEST_SINKS", "dynamodb")
	t.Setenv("PALIMPSEST_INBOUND", "true")
	t.Setenv("PALIMPSEST_ADDR", ":8080")
	t.Setenv("PALIMPSEST_NATS", "nats://from-env:4222")
	cmd := newBridgeRunCmd()
	if err := cmd.Flags().Parse([]string{"--nats", "nats://flag:4222"}); err != nil {
		t.Fatal(err)
	}
	if err := flagsFromEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"kafka": "[k1:9092,k2:9092]", "dynamodb": "http://dynamodb:8000", "dynamodb-table": "events",
		"sinks": "[dynamodb]", "inbound": "true", "addr": ":8080", "nats": "nats://flag:4222", "create": "true",
	} {
		if got := cmd.Flags().Lookup(name).Value.String(); got != want {
			t.Errorf("--%s = %s, want %s", name, got, want)
		}
	}
}

func TestParseReplayFrom(t *testing.T) {
	if r, err := parseReplayFrom("42"); err != nil || r.From != 42 || !r.Since.IsZero() {
		t.Fatalf("42: %+v %v", r, err)
	}
	if r, err := parseReplayFrom("2026-01-02T03:04:05.5Z"); err != nil || r.From != 0 || !r.Since.Equal(time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC)) {
		t.Fatalf("time: %+v %v", r, err)
	}
	for _, bad := range []string{"", "-1", "yesterday", "2026-01-02"} {
		if _, err := parseReplayFrom(bad); err == nil {
			t.Errorf("--from %q accepted", bad)
		}
	}
}

// TestBridgeCommandsEndToEnd runs `palimpsest bridge run` until it has
// mirrored what was appended (and says it is ready), then `bridge replay`
// into another table, against an embedded NATS server, kfake and dynalite.
func TestBridgeCommandsEndToEnd(t *testing.T) {
	srv, err := eventlog.StartServer(eventlog.ServerConfig{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	dyn := harness.NewDynalite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := eventlog.Connect(ctx, srv.ClientURL(), eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 40 {
		if _, err := l.Append(ctx, fmt.Sprintf("d%d", i%4), eventlog.Any, eventlog.Op{Site: uint32(1 + i%4), Counter: uint32(1 + i/4), Payload: []byte("op")}); err != nil {
			t.Fatal(err)
		}
	}
	db := dynamodb.New(dynamodb.Options{BaseEndpoint: aws.String(dyn.Endpoint()), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", "")})
	count := func(table string) (int, error) {
		out, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table), Select: "COUNT", ConsistentRead: aws.Bool(true)})
		if err != nil {
			return 0, err
		}
		return int(out.Count), nil
	}
	common := []string{"--nats", srv.ClientURL(), "--kafka", strings.Join(kafka.ListenAddrs(), ","), "--dynamodb", dyn.Endpoint(), "--kafka-partitions", "2"}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	runCtx, stopRun := context.WithCancel(ctx)
	root := newRootCmd()
	root.SetArgs(append([]string{"bridge", "run", "--addr", addr, "--log-level", "warn"}, common...))
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(runCtx) }()
	bridgeEventually(t, time.Minute, "bridge run mirrors 40 events and is ready", func() error {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		if n, err := count("palimpsest-events"); err != nil || n != 40 {
			return fmt.Errorf("%d items, %v", n, err)
		}
		resp, err = http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !bytes.Contains(body, []byte(`palimpsest_bridge_lag_events{sink="kafka"} 0`)) || !bytes.Contains(body, []byte(`palimpsest_bridge_acked_sequence 40`)) {
			return fmt.Errorf("metrics do not show the bridge caught up yet")
		}
		return nil
	})
	stopRun()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bridge run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("bridge run did not stop 30s after its context ended")
	}

	var out, errOut bytes.Buffer
	root = newRootCmd()
	root.SetArgs(append([]string{"bridge", "replay", "--from", "11", "--sinks", "dynamodb", "--dynamodb-table", "again", "--log-level", "warn"}, common...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("bridge replay: %v\n%s", err, errOut.String())
	}
	if got := out.String(); got != "replay: sequences 11 to 40: 30 events to dynamodb\n" {
		t.Fatalf("replay printed %q", got)
	}
	if !strings.Contains(errOut.String(), "30/30") {
		t.Fatalf("no progress bar reaching 30/30 on stderr: %q", errOut.String())
	}
	if n, err := count("again"); err != nil || n != 30 {
		t.Fatalf("replayed table has %d items, %v; want 30", n, err)
	}
}

// bridgeEventually polls cond until it returns nil, or fails the test with
// its last error after within.
func bridgeEventually(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
