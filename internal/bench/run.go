package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dyplsq/dyplsq/internal/redisserver"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Exit statuses of run.
const (
	exitOK     = 0
	exitFailed = 1 // a scenario failed or the time bound cut the run short
	exitUsage  = 2 // bad flags, or no Redis to run against
)

// returnGrace is how long past its timeout a scenario may take to return
// before the harness gives up on the whole run.
const returnGrace = 15 * time.Second

// config is the parsed command line.
type config struct {
	scenarios string
	n         int
	reps      int
	out       string
	timeout   time.Duration
	redisURL  string
	redisBin  string
	list      bool
	cpuProf   string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.scenarios, "scenarios", "", "comma-separated scenario names, groups or patterns like 'asynq/*/g8' (default: all; baselines of the chosen ones are added)")
	fs.IntVar(&c.n, "n", 50000, "tasks per scenario repetition")
	fs.IntVar(&c.reps, "reps", 3, "repetitions of each scenario (the table shows median, min, max)")
	fs.StringVar(&c.out, "out", "", "also write the table to this file")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Minute, "bound on the whole run; scenarios not finished by then are reported as not run")
	fs.StringVar(&c.redisURL, "redis-url", "", "use this Redis instead of a private redis-server (bench queues are deleted after each repetition; nothing is flushed)")
	fs.StringVar(&c.redisBin, "redis-server", "redis-server", "redis-server binary for the private Redis")
	fs.BoolVar(&c.list, "list", false, "list the scenarios and exit")
	fs.StringVar(&c.cpuProf, "cpuprofile", "", "write a CPU profile of the whole run (worker, SDK, simulator: everything in this process) to this file, for go tool pprof")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./cmd/bench [flags]\n\nMeasures dyplsq and bare asynq on a private, throwaway redis-server.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.n < 1:
		return c, fmt.Errorf("-n must be at least 1, not %d", c.n)
	case c.reps < 1:
		return c, fmt.Errorf("-reps must be at least 1, not %d", c.reps)
	case c.timeout <= 0:
		return c, fmt.Errorf("-timeout must be positive, not %s", c.timeout)
	}
	return c, nil
}

// Run is the whole bench command (cmd/bench): it returns the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitUsage
	}
	all := scenarios()
	if err := validate(all); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitFailed
	}
	sel, err := selectScenarios(all, cfg.scenarios)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitUsage
	}
	if cfg.list {
		listScenarios(stdout, sel)
		return exitOK
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	env, closeEnv, err := openEnv(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitUsage
	}
	defer closeEnv()
	stopProfile, err := startProfile(cfg.cpuProf)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitUsage
	}
	defer stopProfile()

	header := describeRun(ctx, env, cfg)
	loadBefore := loadAverage()
	rows, aborted := runAll(ctx, env, sel, cfg.reps)
	if loadBefore != "" {
		header += fmt.Sprintf(" 1-min load average: %s before, %s after.", loadBefore, loadAverage())
	}

	var table bytes.Buffer
	table.WriteString(header + "\n\n")
	if err := renderTable(&table, rows); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitFailed
	}
	if _, err := stdout.Write(table.Bytes()); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitFailed
	}
	code := exitOK
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, table.Bytes(), 0o644); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			code = exitFailed
		}
	}
	if aborted != nil {
		fmt.Fprintf(stderr, "bench: %v\n", aborted)
		code = exitFailed
	}
	for _, r := range rows {
		if r.Err != nil {
			code = exitFailed
		}
	}
	return code
}

// openEnv connects to the Redis the run uses: a private redis-server, or
// the one of -redis-url. The returned func closes the client and stops the
// private server.
func openEnv(ctx context.Context, cfg config, stderr io.Writer) (*Env, func(), error) {
	env := &Env{N: cfg.n, Stderr: stderr}
	var srv *redisserver.Server
	if cfg.redisURL != "" {
		opt, err := redis.ParseURL(cfg.redisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("-redis-url: %w", err)
		}
		connOpt, err := asynq.ParseRedisURI(cfg.redisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("-redis-url: %w", err)
		}
		env.Redis, env.Addr, env.connOpt = redis.NewClient(opt), opt.Addr, connOpt
	} else {
		var err error
		srv, err = startRedisServer(ctx, cfg.redisBin)
		if err != nil {
			return nil, nil, err
		}
		env.Redis = redis.NewClient(&redis.Options{Addr: srv.Addr})
		env.Addr, env.private = srv.Addr, true
		env.connOpt = asynq.RedisClientOpt{Addr: srv.Addr}
	}
	closeEnv := func() {
		env.Redis.Close()
		srv.Close()
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := env.Redis.Ping(pctx).Err(); err != nil {
		closeEnv()
		return nil, nil, fmt.Errorf("redis at %s does not answer: %w", env.Addr, err)
	}
	if env.private {
		env.Logf("bench: private redis-server on %s (no persistence), stopped at exit", env.Addr)
	} else {
		env.Logf("bench: using the Redis of -redis-url at %s; only bench-* queues are written and deleted", env.Addr)
	}
	return env, closeEnv, nil
}

// runAll runs each scenario reps times. It stops early, returning why, when
// ctx ends or a scenario does not return after its timeout; scenarios not
// run then appear in the rows with that error.
func runAll(ctx context.Context, env *Env, sel []Scenario, reps int) ([]row, error) {
	rows := make([]row, len(sel))
	var aborted error
	for i, sc := range sel {
		rows[i].Scenario = sc
		if aborted != nil {
			rows[i].Err = errors.New("not run")
			continue
		}
		reps := reps
		if sc.MaxReps > 0 {
			reps = min(reps, sc.MaxReps)
		}
		for rep := 1; rep <= reps; rep++ {
			res, err := runOnce(ctx, env, sc)
			if err == nil && !(res.Value > 0) {
				err = fmt.Errorf("non-positive figure %v", res.Value)
			}
			if err != nil {
				rows[i].Err = fmt.Errorf("rep %d: %w", rep, err)
				env.Logf("%-22s rep %d/%d  error: %v", sc.Name, rep, reps, err)
				var stuck *stuckError
				if errors.As(err, &stuck) {
					aborted = err
				} else if ctx.Err() != nil {
					aborted = fmt.Errorf("time bound reached (-timeout) or interrupted: %w", ctx.Err())
				}
				break
			}
			rows[i].Values = append(rows[i].Values, res.Value)
			rows[i].extras = addExtras(rows[i].extras, sc, res.Also)
			env.Logf("%-22s rep %d/%d  %s %s  (%d in %s)", sc.Name, rep, reps,
				formatValue(res.Value), sc.Unit, res.Count, res.Elapsed.Round(time.Millisecond))
		}
	}
	rows = withExtras(rows)
	// Leave an external Redis as found (a private one is simply stopped).
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := env.reset(cctx); err != nil {
		env.Logf("bench: clean-up: %v", err)
	}
	return rows, aborted
}

// stuckError reports a scenario that ignored its context.
type stuckError struct {
	name    string
	timeout time.Duration
}

func (e *stuckError) Error() string {
	return fmt.Sprintf("scenario %s did not return within %s of its %s timeout; run stopped", e.name, returnGrace, e.timeout)
}

// runOnce empties the Redis, then runs one repetition of sc under its
// timeout.
func runOnce(ctx context.Context, env *Env, sc Scenario) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := env.reset(ctx); err != nil {
		return Result{}, fmt.Errorf("reset redis: %w", err)
	}
	runtime.GC()
	timeout := sc.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type outcome struct {
		res Result
		err error
	}
	ch := make(chan outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				ch <- outcome{err: fmt.Errorf("panic: %v", p)}
			}
		}()
		res, err := sc.Run(rctx, env)
		ch <- outcome{res, err}
	}()
	select {
	case o := <-ch:
		if o.err == nil && rctx.Err() != nil {
			o.err = rctx.Err()
		}
		return o.res, o.err
	case <-rctx.Done():
	}
	select {
	case o := <-ch:
		if o.err == nil {
			o.err = rctx.Err()
		}
		return o.res, o.err
	case <-time.After(returnGrace):
		return Result{}, &stuckError{sc.Name, timeout}
	}
}

// describeRun returns one line saying what ran where.
func describeRun(ctx context.Context, env *Env, cfg config) string {
	version := "unknown"
	if info, err := env.Redis.InfoMap(ctx, "server").Result(); err == nil {
		if v := info["Server"]["redis_version"]; v != "" {
			version = v
		}
	}
	where := "private redis-server, no persistence"
	if !env.private {
		where = "Redis of -redis-url"
	}
	return fmt.Sprintf("N = %s tasks per repetition, %d repetition(s); %d CPU(s), GOMAXPROCS %d, %s %s/%s; Redis %s (%s); %s.",
		groupThousands(int64(cfg.n)), cfg.reps, runtime.NumCPU(), runtime.GOMAXPROCS(0),
		runtime.Version(), runtime.GOOS, runtime.GOARCH, version, where, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
}

// listScenarios prints the scenarios as an aligned list.
func listScenarios(w io.Writer, sel []Scenario) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tGROUP\tUNIT\tBASELINE\tFIGURE")
	for _, s := range sel {
		base := s.Baseline
		if base == "" {
			base = "-"
		}
		fmt.Fprintln(tw, strings.Join([]string{s.Name, s.Group, s.Unit, base, s.Figure}, "\t"))
	}
	tw.Flush()
}

// loadAverage returns the 1-minute load average from /proc/loadavg, or ""
// where there is none. Other work on the machine skews the figures: the
// header shows it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// addExtras appends the extra figures of one repetition of sc to the rows
// that collect them, creating a row on an extra's first appearance.
func addExtras(extras []row, sc Scenario, also []Extra) []row {
	for _, x := range also {
		name := sc.Name + "/" + x.Name
		k := slices.IndexFunc(extras, func(r row) bool { return r.Scenario.Name == name })
		if k < 0 {
			extras = append(extras, row{Scenario: Scenario{
				Name: name, Group: sc.Group, Figure: sc.Figure + ": " + x.Name, Unit: x.Unit,
			}})
			if sc.Baseline != "" {
				extras[len(extras)-1].Scenario.Baseline = sc.Baseline + "/" + x.Name
			}
			k = len(extras) - 1
		}
		extras[k].Values = append(extras[k].Values, x.Value)
	}
	return extras
}

// withExtras puts each row's extra rows right after it, dropping a
// baseline that reported no such extra (no ratio then).
func withExtras(rows []row) []row {
	var out []row
	names := make(map[string]bool)
	for _, r := range rows {
		names[r.Scenario.Name] = true
		for _, x := range r.extras {
			names[x.Scenario.Name] = true
		}
	}
	for _, r := range rows {
		extras := r.extras
		r.extras = nil
		out = append(out, r)
		for _, x := range extras {
			if !names[x.Scenario.Baseline] {
				x.Scenario.Baseline = ""
			}
			out = append(out, x)
		}
	}
	return out
}

// startProfile starts a CPU profile into path ("" for none) and returns
// what stops it.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
