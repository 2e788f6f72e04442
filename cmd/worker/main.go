// Command worker runs dyplsq binding-update jobs from Redis against
// Dyplsapi, and serves the monitoring UI, metrics and health checks.
// Run `worker --help` for its settings.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
