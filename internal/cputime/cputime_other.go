//go:build !unix

package cputime

import "time"

// Precise reports whether Now reads CPU time (else it reads a monotonic wall clock).
const Precise = false

var epoch = time.Now()

// Now returns the time since the process started: this platform gives no CPU time here.
func Now() time.Duration { return time.Since(epoch) }
