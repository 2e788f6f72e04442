package enqueuecli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/dyplsq/dyplsq/envflag"
	"github.com/dyplsq/dyplsq/logging"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/redisconn"
	"github.com/dyplsq/dyplsq/tasks"
)

// Exit statuses, as the README documents them.
const (
	exitOK          = 0   // done
	exitFailed      = 1   // rows invalid, or jobs dead (with --wait)
	exitUsage       = 2   // usage, configuration or connection error
	exitGaveUp      = 3   // --wait gave up: halted workers or --wait-timeout
	exitInterrupted = 130 // Ctrl-C (128 + SIGINT): re-run the same command to resume
)

// env is what a command gets from the process.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// common holds the settings every command shares: Redis, logging, key
// prefix.
type common struct {
	redisSettings    *redisconn.Settings
	logLevel, logFmt *string
	keyPrefix        *string

	redis redisconn.Config
	log   zerolog.Logger
}

// addCommon declares the common settings on s.
func addCommon(s *envflag.Set) *common {
	return &common{
		redisSettings: redisconn.AddSettings(s),
		logLevel:      s.String("LOG_LEVEL", "log-level", "warn", "debug, info, warn or error (diagnostics on stderr)"),
		logFmt:        s.String("LOG_FORMAT", "log-format", "console", "json or console"),
		keyPrefix:     s.String("DYPLSQ_KEY_PREFIX", "key-prefix", tasks.DefaultKeyPrefix, "advanced: prefix of dyplsq's own Redis keys; must match the worker's"),
	}
}

// finish checks the common settings after parsing.
func (c *common) finish(e env) error {
	var err error
	if c.redis, err = c.redisSettings.Config(e.getenv); err != nil {
		return err
	}
	if strings.TrimSpace(*c.keyPrefix) == "" || strings.ContainsAny(*c.keyPrefix, "{} ") {
		return fmt.Errorf("DYPLSQ_KEY_PREFIX (--key-prefix): %q is not a key prefix: use letters, digits, - and _", *c.keyPrefix)
	}
	log, err := logging.New(*c.logLevel, *c.logFmt, e.stderr)
	if err != nil {
		return err
	}
	c.log = log.With().Str("component", "enqueue").Logger()
	redis.SetLogger(logging.RedisLogger{L: log.With().Str("component", "go-redis").Logger()})
	return nil
}

// prefix is the key prefix of dyplsq's own keys.
func (c *common) prefix() string { return strings.TrimSpace(*c.keyPrefix) }

// connect opens Redis and checks that it answers within wait.
func (c *common) connect(ctx context.Context, wait time.Duration) (redis.UniversalClient, error) {
	rdb, err := redisconn.Open(c.redis)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach Redis at %s: %s", c.redis, mask.Text(err.Error()))
	}
	return rdb, nil
}

// parseArgs parses args with s, allowing flags after positional arguments
// ("enqueue FILE --wait"), and returns the positional arguments. With
// --help it writes help and returns envflag.ErrHelp.
// A bad flag is reported with a pointer to "name --help".
func parseArgs(s *envflag.Set, name string, args []string, help func()) ([]string, error) {
	var pos []string
	cur := args
	for {
		if err := s.Parse(cur, io.Discard); err != nil {
			if errors.Is(err, envflag.ErrHelp) || errors.Is(err, flag.ErrHelp) {
				help()
				return nil, envflag.ErrHelp
			}
			return nil, usagef("%s (see %s --help)", err, name)
		}
		left := s.Args()
		if len(left) == 0 {
			return pos, nil
		}
		if consumed := len(cur) - len(left); consumed > 0 && cur[consumed-1] == "--" {
			return append(pos, left...), nil
		}
		pos = append(pos, left[0])
		cur = left[1:]
	}
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// redisGuard retries Redis operations through an outage: it backs off and
// retries for up to timeout from the first failure of the outage, telling
// the user once when Redis goes away and once when it comes back. It is
// shared by every goroutine of a run, so an outage is one outage.
type redisGuard struct {
	timeout time.Duration
	out     io.Writer
	where   string

	mu        sync.Mutex
	downSince time.Time
	lastErr   error
}

// errRedisLost is returned when Redis stayed away longer than the timeout.
type errRedisLost struct {
	timeout time.Duration
	err     error
}

func (e *errRedisLost) Error() string {
	return fmt.Sprintf("Redis has not answered for %s (--redis-timeout): %s", e.timeout, mask.Text(e.err.Error()))
}

func (e *errRedisLost) Unwrap() error { return e.err }

// do runs op until it succeeds, returns an error that retrying cannot fix,
// ctx ends, or Redis has been failing for longer than the timeout. A call
// in flight is not cut short when ctx ends (op gets a context without its
// cancellation, bounded by the client's own timeouts), so that what it did
// is known; the retries stop.
func (g *redisGuard) do(ctx context.Context, op func(context.Context) error) error {
	backoff := 50 * time.Millisecond
	for {
		err := op(context.WithoutCancel(ctx))
		if err == nil {
			g.up()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retryable(err) {
			return err
		}
		if down := g.down(err); down > g.timeout {
			return &errRedisLost{timeout: g.timeout, err: err}
		}
		d := backoff/2 + time.Duration(rand.Int64N(int64(backoff)))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (g *redisGuard) up() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.downSince.IsZero() {
		fmt.Fprintf(g.out, "enqueue: Redis answers again after %s; going on\n", time.Since(g.downSince).Round(100*time.Millisecond))
		g.downSince = time.Time{}
	}
}

// down records a failure and returns how long Redis has been failing.
func (g *redisGuard) down(err error) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastErr = err
	if g.downSince.IsZero() {
		g.downSince = time.Now()
		fmt.Fprintf(g.out, "enqueue: Redis at %s is not answering (%s); retrying for up to %s (--redis-timeout)\n",
			g.where, mask.Text(err.Error()), g.timeout)
	}
	return time.Since(g.downSince)
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func retryable(err error) bool {
	var p permanentError
	if errors.As(err, &p) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// An error reply (a script error, a wrong type, no permission) is not an
	// outage: waiting cannot fix it. Only replies that say the server is
	// busy or failing over are worth waiting for.
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"LOADING", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "BUSY", "NOREPLICAS"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	return true
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@%+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// commandLine rebuilds a command line from args for the user to run again,
// leaving out secrets given as flags: --redis-password is dropped (the
// variable REDIS_PASSWORD still applies) and a password in --redis-url is
// shown as xxxxx.
func commandLine(name string, args []string) string {
	out := []string{name}
	for i := 0; i < len(args); i++ {
		a := args[i]
		flagName, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			flagName, hasValue = "", false
		}
		switch flagName {
		case "redis-password":
			if !hasValue {
				i++ // the value is the next argument
			}
			continue
		case "redis-url":
			if !hasValue && i+1 < len(args) {
				i++
				value = args[i]
			}
			out = append(out, "--redis-url", shellQuote(redisconn.Config{URL: value}.String()))
			continue
		}
		out = append(out, shellQuote(a))
	}
	return strings.Join(out, " ")
}
