package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(http.StatusOK)
		case "/slow":
			time.Sleep(time.Second)
		default:
			http.Error(w, "not ready: nats", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := probe(ctx, srv.URL+"/readyz", time.Second); err != nil {
		t.Errorf("ready endpoint: %v", err)
	}
	if err := probe(ctx, srv.URL+"/down", time.Second); err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "not ready: nats") {
		t.Errorf("503: got %v, want an error with the status and body", err)
	}
	if err := probe(ctx, srv.URL+"/slow", 50*time.Millisecond); err == nil {
		t.Error("a slow answer passed the probe")
	}
	if err := probe(ctx, "http://127.0.0.1:1/readyz", time.Second); err == nil {
		t.Error("nothing listening passed the probe")
	}
}
