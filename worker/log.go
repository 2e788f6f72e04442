package worker

import (
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/mask"
)

// asynqLogger sends asynq's own log lines to zerolog, masked. Its logger
// carries component=asynq. Two kinds of line are demoted to debug: asynq's
// "Retry exhausted" warning, since the handler has already logged the job's
// death with its reason, and its Redis errors, since the worker logs one
// line when Redis becomes unreachable and one when it answers again.
type asynqLogger struct{ l zerolog.Logger }

func (a asynqLogger) line(ev *zerolog.Event, args []any) {
	ev.Msg(mask.Text(fmt.Sprint(args...)))
}

// demoted reports whether a line of asynq's at warn or error level goes to
// debug instead.
func demoted(args []any) bool {
	msg := fmt.Sprint(args...)
	if strings.HasPrefix(msg, "Retry exhausted for task") {
		return true
	}
	return redisNoise(msg)
}

// redisNoise reports whether msg is a failure to reach Redis, which the
// worker's Redis watch reports once.
func redisNoise(msg string) bool {
	for _, s := range []string{"connection refused", "i/o timeout", "connection reset", "broken pipe", "EOF",
		"no route to host", "dial tcp", "redis: client is closed", "LOADING"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// redisEvent returns a warning for err, or a debug line when err is a
// failure to reach Redis: during an outage every job and loop would say so,
// and the Redis watch says it once.
func redisEvent(l zerolog.Logger, err error) *zerolog.Event {
	if err != nil && redisNoise(err.Error()) {
		return l.Debug()
	}
	return l.Warn()
}

func (a asynqLogger) Debug(args ...any) { a.line(a.l.Debug(), args) }
func (a asynqLogger) Info(args ...any)  { a.line(a.l.Info(), args) }

// Warn logs at warn level, or at debug for a demoted line.
func (a asynqLogger) Warn(args ...any) {
	if demoted(args) {
		a.line(a.l.Debug(), args)
		return
	}
	a.line(a.l.Warn(), args)
}

// Error logs at error level, or at debug for a demoted line.
func (a asynqLogger) Error(args ...any) {
	if demoted(args) {
		a.line(a.l.Debug(), args)
		return
	}
	a.line(a.l.Error(), args)
}

// Fatal logs at fatal level; asynq calls it only when it cannot go on.
func (a asynqLogger) Fatal(args ...any) { a.line(a.l.Fatal(), args) }
