package worker

import (
	"fmt"

	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/dypls"
)

// asynqLogger sends asynq's own log lines to zerolog, masked.
type asynqLogger struct{ l zerolog.Logger }

func (a asynqLogger) line(ev *zerolog.Event, args []any) {
	ev.Str("component", "asynq").Msg(dypls.Mask(fmt.Sprint(args...)))
}
func (a asynqLogger) Debug(args ...any) { a.line(a.l.Debug(), args) }
func (a asynqLogger) Info(args ...any)  { a.line(a.l.Info(), args) }
func (a asynqLogger) Warn(args ...any)  { a.line(a.l.Warn(), args) }
func (a asynqLogger) Error(args ...any) { a.line(a.l.Error(), args) }

// Fatal logs at fatal level; asynq calls it only when it cannot go on.
func (a asynqLogger) Fatal(args ...any) { a.line(a.l.Fatal(), args) }
