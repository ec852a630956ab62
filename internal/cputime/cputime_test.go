package cputime

import "testing"

// TestNowCountsWork checks that Now advances with work done and never goes back.
func TestNowCountsWork(t *testing.T) {
	start := Now()
	x := 0
	for i := range 50_000_000 {
		x += i % 7
	}
	if d := Since(start); d <= 0 || x == 0 {
		t.Fatalf("CPU time after a busy loop: %v", d)
	}
}
