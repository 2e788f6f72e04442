// Command demo runs the whole dyplsq pipeline on a throwaway Redis: the
// simulator, a worker and a sample batch through the enqueue CLI, then
// prints the outcome table and the dead letters, and cleans up. With
// --keep it leaves everything running with the monitoring UI until Ctrl-C.
// `make demo` and `make demo-ui` build the binaries and run it.
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
