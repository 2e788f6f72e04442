// Package logging builds the one zerolog logger of a dyplsq process from
// LOG_LEVEL and LOG_FORMAT.
package logging

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// New returns a logger writing to w at level (debug, info, warn, error) in
// format json (one object per line) or console (for people).
func New(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(strings.TrimSpace(level)))
	if err != nil || lvl == zerolog.NoLevel {
		return zerolog.Nop(), fmt.Errorf("LOG_LEVEL (--log-level): %q is not one of debug, info, warn, error", level)
	}
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "json", "":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Nop(), fmt.Errorf("LOG_FORMAT (--log-format): %q is not json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
