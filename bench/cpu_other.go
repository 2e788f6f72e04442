//go:build !unix

package main

import "time"

// processCPU returns 0: no portable CPU clock outside Unix.
func processCPU() time.Duration { return 0 }
