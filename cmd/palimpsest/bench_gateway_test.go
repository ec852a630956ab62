package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// A small load against an in-process serve: the report has every figure,
// and every op typed in the window was acknowledged and broadcast.
func TestBenchGatewaySmall(t *testing.T) {
	addr, token, _, _ := startServe(t, t.TempDir())
	var out bytes.Buffer
	cfg := benchGatewayConfig{url: "ws://" + addr + "/v1/ws", token: token, clients: 6, docs: 2, rate: 20,
		duration: time.Second, warmup: 200 * time.Millisecond, limitP99: 50 * time.Millisecond}
	if err := runBenchGateway(context.Background(), &out, cfg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ack latency:", "broadcast latency:", "ops/s sustained", "server CPU:", "µs/op", "client errors: 0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
