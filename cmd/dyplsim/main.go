// Command dyplsim serves a local Dyplsapi (Phone Number Protection) API that
// the official Alibaba Cloud Go SDK talks to unchanged, for tests, demos and
// benchmarks. See package github.com/dyplsq/dyplsq/dyplsim.
//
// Usage:
//
//	dyplsim [flags]
//
// Run dyplsim --help for the flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
