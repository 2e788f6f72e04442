//go:build !unix

package bench

import "time"

// processCPU returns 0: no portable CPU clock outside Unix.
func processCPU() time.Duration { return 0 }
