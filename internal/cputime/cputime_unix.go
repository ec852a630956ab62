//go:build unix

package cputime

import (
	"syscall"
	"time"
)

// Precise reports whether Now reads CPU time (else it reads a monotonic wall clock).
const Precise = true

// Now returns the user and system CPU time of every thread of the process (garbage collection
// included).
func Now() time.Duration {
	var r syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r); err != nil {
		return time.Duration(time.Now().UnixNano())
	}
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
