// Package logging builds the one zerolog logger of a dyplsq process from
// LOG_LEVEL and LOG_FORMAT.
//
// Every line has one key per field, in snake_case (API parameter names
// included: subs_id, request_id); timestamps have milliseconds; durations
// are whole milliseconds under a key ending in _ms.
package logging

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/mask"
)

// TimeFormat is the timestamp format of every line: RFC 3339 with
// milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

func init() {
	// Set once, before any logger exists: zerolog reads it on every line.
	zerolog.TimeFieldFormat = TimeFormat
}

// New returns a logger writing to w at level (debug, info, warn, error) in
// format json (one object per line) or console (for people; coloured only
// when w is a terminal).
func New(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(strings.TrimSpace(level)))
	if err != nil || lvl == zerolog.NoLevel {
		return zerolog.Nop(), fmt.Errorf("LOG_LEVEL (--log-level): %q is not one of debug, info, warn, error", level)
	}
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "json", "":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: TimeFormat, NoColor: !isTerminal(w)}
	default:
		return zerolog.Nop(), fmt.Errorf("LOG_FORMAT (--log-format): %q is not json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// RedisLogger takes go-redis's own messages (redis.SetLogger): dial
// failures and pool retries, which the process reports itself in one line,
// go to the debug log, masked.
type RedisLogger struct{ L zerolog.Logger }

// Printf logs one go-redis message at debug level.
func (l RedisLogger) Printf(_ context.Context, format string, v ...any) {
	l.L.Debug().Msg(mask.Text(fmt.Sprintf(format, v...)))
}

// Ms returns d in whole milliseconds, for fields ending in _ms.
func Ms(d time.Duration) int64 { return d.Milliseconds() }
