// Command enqueue queues Dyplsapi binding updates from CSV and JSON Lines
// files as a batch that is safe to re-run, follows the batch to the outcome
// of every row, and works the dead-letter queue and the queues. Run
// `enqueue --help` for its usage; the command is package enqueuecli.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/dyplsq/dyplsq/enqueuecli"
)

func main() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		// The live heap stays small whatever the file's size: collect less
		// often, within a bound well under 100 MiB.
		debug.SetGCPercent(400)
		debug.SetMemoryLimit(64 << 20)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := enqueuecli.Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
