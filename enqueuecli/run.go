package enqueuecli

import (
	"context"
	"io"
)

// Run is the whole command: it returns the exit status.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) > 0 {
		switch args[0] {
		case "batch":
			return runBatch(ctx, args[1:], e)
		case "dlq":
			return runDLQ(ctx, args[1:], e)
		case "queue":
			return runQueue(ctx, args[1:], e)
		case "help":
			args = []string{"--help"}
		}
	}
	return runEnqueue(ctx, args, e)
}
