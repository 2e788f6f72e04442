// Command bench measures dyplsq against bare asynq on a throwaway Redis.
//
// It starts its own redis-server on a free loopback port (no persistence,
// temporary directory), runs each selected scenario -reps times, and prints a
// markdown table of medians with min/max and, where a scenario names a
// baseline, the ratio of its median to the baseline's. It never touches the
// Redis of REDIS_URL or 127.0.0.1:6379 unless -redis-url is given.
//
// Usage:
//
//	go run ./cmd/bench [-scenarios LIST] [-n N] [-reps R] [-out FILE] [-timeout D] [-redis-url URL] [-list]
//
// Scenarios are registered in internal/bench (scenario.go).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/dyplsq/dyplsq/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := bench.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
