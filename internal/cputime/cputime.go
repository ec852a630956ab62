// Package cputime reads the CPU time the process has used, for benchmarks on a shared machine:
// a ratio of CPU times measured in one run does not move with the time spent waiting for a CPU
// that other jobs hold, which wall-clock ratios do.
package cputime

import "time"

// Since returns the CPU time used since start, a value returned by Now.
func Since(start time.Duration) time.Duration { return Now() - start }
