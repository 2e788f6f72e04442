// Command enqueue queues Dyplsapi binding updates from CSV and JSON Lines
// files as a batch that is safe to re-run, follows the batch to the outcome
// of every row, and works the dead-letter queue and the queues. Run
// `enqueue --help` for its usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
