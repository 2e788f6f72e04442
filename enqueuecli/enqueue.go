package enqueuecli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/dypls/errclass"
	"github.com/dyplsq/dyplsq/envflag"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// exitError ends a command with an exit status: its message, if any, goes
// to stderr as one line. A command's phases return it instead of printing
// and returning a status; [exitCode] is the one place that turns it into
// the status.
type exitError struct {
	code int
	msg  string // without the final newline; empty prints nothing
}

func (x *exitError) Error() string { return x.msg }

// exitf ends the command with code and the formatted message.
func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// exitWith ends the command with code and no message: what the run had to
// say is printed already.
func exitWith(code int) error { return &exitError{code: code} }

// exitCode prints err's message to stderr and returns the exit status it
// carries: nil is [exitOK], and an error that carries no status is a usage
// error, printed after "enqueue: ".
func exitCode(e env, err error) int {
	if err == nil {
		return exitOK
	}
	var x *exitError
	if !errors.As(err, &x) {
		fmt.Fprintf(e.stderr, "enqueue: %s\n", mask.Text(err.Error()))
		return exitUsage
	}
	if x.msg != "" {
		fmt.Fprintln(e.stderr, x.msg)
	}
	return x.code
}

// problemLimit is how many problems a terminal shows.
const problemLimit = 20

// defaultConcurrency is the number of Enqueue calls in flight.
var defaultConcurrency = max(16, 8*runtime.GOMAXPROCS(0))

// DefaultMaxPending is how many of a batch's rows enqueue keeps queued and
// not yet ended, by default: about 8 MB of Redis memory (a queued row takes
// about 800 bytes), and several seconds of work for a fleet at the
// account's whole quota.
const DefaultMaxPending = 10000

type enqueueConfig struct {
	*common
	file         string
	format       string
	encoding     string
	queue        string
	queueGiven   bool // --queue was on the command line
	newQueue     bool
	skipInvalid  bool
	dryRun       bool
	wait         bool
	waitTimeout  time.Duration
	report       string
	showNumbers  bool
	redisTimeout time.Duration
	concurrency  int
	maxPending   int
	keepFinished *time.Duration
	durable      *tasks.Durability // nil: confirmed once the primary has a row
	window       *time.Duration
	args         []string
}

func parseEnqueue(args []string, e env) (*enqueueConfig, error) {
	s := envflag.New("enqueue", "", e.getenv)
	c := &enqueueConfig{args: args}
	fs := s.FlagSet()
	fs.StringVar(&c.format, "format", "", "")
	fs.StringVar(&c.encoding, "encoding", "", "")
	fs.StringVar(&c.queue, "queue", tasks.DefaultBulkQueue, "")
	fs.BoolVar(&c.newQueue, "new-queue", false, "")
	fs.BoolVar(&c.skipInvalid, "skip-invalid", false, "")
	fs.BoolVar(&c.dryRun, "dry-run", false, "")
	fs.BoolVar(&c.wait, "wait", false, "")
	fs.DurationVar(&c.waitTimeout, "wait-timeout", 0, "")
	fs.StringVar(&c.report, "report", "", "")
	fs.BoolVar(&c.showNumbers, "show-numbers", false, "")
	fs.DurationVar(&c.redisTimeout, "redis-timeout", 60*time.Second, "")
	fs.IntVar(&c.concurrency, "concurrency", defaultConcurrency, "")
	maxPending := s.Int("ENQUEUE_MAX_PENDING", "max-pending", DefaultMaxPending, 0,
		"keep at most N of a batch's rows queued and not yet ended, queueing more as rows end, so that Redis memory stays bounded whatever the file's size (0: queue every row at once)")
	c.keepFinished = s.Duration("ENQUEUE_KEEP_FINISHED", "keep-finished", 0,
		"keep each finished row's task and result in asynq this long, to see them in the web UI (0: not kept; the batch record keeps every row's outcome, code and RequestId for the batch window anyway)")
	durable := s.Int("ENQUEUE_DURABLE", "durable", 0, 0,
		"confirm rows only once N Redis replicas hold them (WAIT), so that a failover cannot lose them; rows not confirmed in time are counted and the exit status is 1 (0: confirmed once the primary has them)")
	durableTimeout := s.Duration("ENQUEUE_DURABLE_TIMEOUT", "durable-timeout", tasks.DefaultDurableTimeout,
		"how long --durable waits for the replicas, per chunk of rows")
	c.window = s.Duration("BATCH_WINDOW", "batch-window", batch.DefaultTTL, "how long a batch record is kept: re-running the same file within it queues nothing twice")
	c.common = addCommon(s)
	pos, err := parseArgs(s, "enqueue", args, func() { fmt.Fprint(e.stdout, enqueueHelp(s)) })
	if err != nil {
		return nil, err
	}
	c.maxPending = *maxPending
	if *durable > 0 {
		c.durable = &tasks.Durability{Replicas: *durable, Timeout: *durableTimeout}
	}
	fs.Visit(func(f *flag.Flag) { c.queueGiven = c.queueGiven || f.Name == "queue" })
	switch {
	case len(pos) == 0:
		return nil, usagef("no input file: give a CSV or JSON Lines file, or - for stdin (see enqueue --help)")
	case len(pos) > 1:
		return nil, usagef("one input file at a time, got %d arguments: %q (see enqueue --help)", len(pos), pos)
	}
	c.file = pos[0]
	switch {
	case c.queue == "":
		return nil, usagef("--queue is empty")
	case c.concurrency < 1 || c.concurrency > 1024:
		return nil, usagef("--concurrency %d: want 1 to 1024", c.concurrency)
	case c.waitTimeout < 0:
		return nil, usagef("--wait-timeout %s: want 0 (no limit) or more", c.waitTimeout)
	case c.redisTimeout <= 0:
		return nil, usagef("--redis-timeout %s: want a positive duration such as 60s", c.redisTimeout)
	case *durable < 0 || *durableTimeout <= 0:
		return nil, usagef("--durable %d --durable-timeout %s: want a replica count of 0 or more and a positive timeout", *durable, *durableTimeout)
	case c.wait && c.dryRun:
		return nil, usagef("--wait and --dry-run do not go together: a dry run queues nothing")
	}
	if err := c.common.finish(e); err != nil {
		return nil, err
	}
	return c, nil
}

// summary is what a run did, printed as its last line.
type summary struct {
	id                   string
	read, valid, invalid int64 // rows of the input
	queued, already      int64 // rows queued by this run, and found queued before
	elapsed, queueTime   time.Duration
	dryRun               bool
	note                 string // why nothing was read, if nothing was
}

// line is the summary line: read, valid, queued, already queued, invalid,
// rows/s (of the queueing pass), elapsed time and batch id.
func (s summary) line() string {
	msg := fmt.Sprintf("read %d, valid %d, queued %d, already queued %d, invalid %d", s.read, s.valid, s.queued, s.already, s.invalid)
	if s.queueTime > 0 {
		msg += fmt.Sprintf("; %.0f rows/s", float64(s.queued+s.already)/s.queueTime.Seconds())
	}
	msg += fmt.Sprintf(" (%s)", s.elapsed.Round(time.Millisecond))
	if s.dryRun {
		msg += "; dry run: nothing queued"
	}
	if s.note != "" {
		msg += "; " + s.note
	}
	if s.id == "" {
		return msg
	}
	return msg + "; batch " + s.id
}

// runEnqueue is the enqueue command: its phases return an *exitError to
// end the run, which [exitCode] turns into the exit status.
func runEnqueue(ctx context.Context, args []string, e env) int {
	cfg, err := parseEnqueue(args, e)
	if errors.Is(err, envflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitCode(e, err)
	}
	r := &enqueueRun{cfg: cfg, e: e, start: time.Now()}
	in, err := openInput(cfg.file, cfg.format, cfg.encoding, e.stdin)
	if err != nil {
		return exitCode(e, err)
	}
	defer in.cleanup()
	for _, n := range in.notes {
		fmt.Fprintf(e.stderr, "enqueue: %s: %s\n", in.display, n)
	}
	r.in = in
	r.terminal = isTerminal(e.stderr)
	r.validate = func(u *tasks.Update) error { return u.Validate(time.Now()) }

	// Pass 1: validate every row and name the batch by its content.
	if err := r.validateRows(ctx); err != nil {
		return exitCode(e, err)
	}

	// Pass 2: queue.
	rdb, err := cfg.connect(ctx, min(cfg.redisTimeout, 10*time.Second))
	if err != nil {
		return exitCode(e, exitf(exitUsage, "enqueue: %s", err))
	}
	defer rdb.Close()
	r.rdb = rdb
	r.store = &batch.Store{Redis: rdb, Prefix: cfg.prefix(), TTL: *cfg.window}
	r.guard = &redisGuard{timeout: cfg.redisTimeout, out: e.stderr, where: cfg.redis.String()}
	r.resume = commandLine("enqueue", cfg.args)
	if in.display == "stdin" {
		r.resume += "   (with the same input on stdin)"
	}
	if err := r.findBatch(ctx); err != nil {
		return exitCode(e, err)
	}
	if err := r.beginBatch(ctx); err != nil {
		return exitCode(e, err)
	}
	q, err := r.queueRows(ctx)
	if err != nil {
		return exitCode(e, err)
	}
	return exitCode(e, r.followBatch(ctx, q))
}

// enqueueRun is one run of the enqueue command, carried from phase to
// phase: validate every row ([enqueueRun.validateRows]), find or begin the
// batch ([enqueueRun.findBatch], [enqueueRun.beginBatch]), queue its rows
// ([enqueueRun.queueRows]), then wait and report ([enqueueRun.followBatch]).
// A phase that ends the run returns an *exitError; nil goes on.
type enqueueRun struct {
	cfg      *enqueueConfig
	e        env
	start    time.Time
	in       *input
	terminal bool
	validate func(*tasks.Update) error
	pp       *problemPrinter
	p1       pass1
	sum      summary

	rdb    redis.UniversalClient
	store  *batch.Store
	guard  *redisGuard
	resume string // the command line that resumes the batch
	info   batch.Info
	layout tasks.Layout // how the batch's queue is split (WORKER_SHARDS)
}

// validateRows reads every row, prints the problems and names the batch.
// It ends the run on an unreadable input, on invalid rows without
// --skip-invalid, and on a dry run.
func (r *enqueueRun) validateRows(ctx context.Context) error {
	cfg, e, in := r.cfg, r.e, r.in
	r.pp = &problemPrinter{w: e.stderr, file: in.display}
	if r.terminal {
		r.pp.limit = problemLimit
	}
	p1, err := validatePass(ctx, in, legacyQueues(cfg.queue), r.pp, r.validate, e.stderr, r.terminal)
	if err != nil {
		return r.validateFailed(err)
	}
	r.p1 = p1
	r.pp.finish()
	r.sum = summary{id: p1.id, read: p1.rows, valid: p1.rows - p1.invalid, invalid: p1.invalid, dryRun: cfg.dryRun}
	if p1.warned > 0 {
		r.sum.note = rows(p1.warned, "row has", "rows have") + " warnings (see above)"
	}

	if !(p1.invalid > 0 && !cfg.skipInvalid || cfg.dryRun) {
		return nil
	}
	r.sum.elapsed = time.Since(r.start)
	fmt.Fprintln(e.stdout, r.sum.line())
	code := exitOK
	if p1.invalid > 0 && !cfg.skipInvalid {
		if valid := p1.rows - p1.invalid; valid > 0 {
			fmt.Fprintf(e.stderr, "enqueue: %d of %d rows are invalid, so nothing was queued: fix them and run again, or use --skip-invalid to queue the %d valid rows\n",
				p1.invalid, p1.rows, valid)
		} else {
			fmt.Fprintf(e.stderr, "enqueue: %s invalid, so nothing was queued: fix them and run again\n", map[bool]string{true: "the one row is", false: fmt.Sprintf("all %d rows are", p1.rows)}[p1.rows == 1])
		}
		code = exitFailed
	}
	if cfg.report != "" {
		rp := &reporter{id: p1.id, showNumbers: cfg.showNumbers, validate: r.validate}
		if err := rp.write(ctx, cfg.report, in, e.stdout); err != nil {
			return exitf(max(code, exitUsage), "enqueue: report: %s", mask.Text(err.Error()))
		}
	}
	return exitWith(code)
}

// validateFailed says why the validation pass stopped.
func (r *enqueueRun) validateFailed(err error) error {
	e := r.e
	var he *headerError
	if errors.As(err, &he) {
		fmt.Fprintln(e.stderr, he.Error())
		fmt.Fprintln(e.stdout, summary{elapsed: time.Since(r.start), note: "the header is not valid: nothing queued"}.line())
		return exitWith(exitFailed)
	}
	var ee *encodingError
	if errors.As(err, &ee) {
		fmt.Fprintln(e.stderr, mask.Text(ee.Error()))
		fmt.Fprintln(e.stdout, summary{elapsed: time.Since(r.start), note: "the file is not UTF-8: nothing queued"}.line())
		return exitWith(exitFailed)
	}
	if errors.Is(err, context.Canceled) {
		return exitf(exitInterrupted, "enqueue: interrupted while validating; nothing queued")
	}
	return exitf(exitUsage, "enqueue: %s", mask.Text(err.Error()))
}

// lost says that Redis failed mid-run, that nothing is lost, and how to
// resume.
func (r *enqueueRun) lost(err error) error {
	return exitf(exitUsage, "enqueue: %s\nNothing is lost: every row queued so far is in batch %s. To queue the rest, run the same command again once Redis is back:\n  %s",
		mask.Text(err.Error()), r.p1.id, r.resume)
}

// interruptedOrLost ends the run after a Redis call that failed before
// anything was queued.
func (r *enqueueRun) interruptedOrLost(err error) error {
	if errors.Is(err, context.Canceled) {
		return exitf(exitInterrupted, "enqueue: interrupted; nothing queued")
	}
	return r.lost(err)
}

// findBatch looks for the batch, which may exist already: under its id, or
// under the id an earlier version gave the same file. An existing batch
// keeps its queue; a new one needs its queue to exist unless --new-queue.
func (r *enqueueRun) findBatch(ctx context.Context) error {
	cfg, in := r.cfg, r.in
	var found *batch.Status
	err := r.guard.do(ctx, func(ctx context.Context) error {
		found = nil
		for _, id := range append([]string{r.p1.id}, r.p1.legacyIDs...) {
			st, err := r.store.Status(ctx, id)
			if errors.Is(err, batch.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			found = &st
			return nil
		}
		return nil
	})
	if err != nil {
		return r.interruptedOrLost(err)
	}
	switch {
	case found != nil && found.Queue != cfg.queue && cfg.queueGiven:
		return exitf(exitUsage, "enqueue: %s is batch %s, queued to %s on %s; a batch's rows all go to one queue, so nothing is queued to %s. Run without --queue (or with --queue %s) to go on with it; to queue these rows to %s as a new batch, change the file (any change makes a new batch)",
			in.display, found.ID, found.Queue, found.Created.Local().Format(time.DateTime), cfg.queue, found.Queue, cfg.queue)
	case found != nil:
		cfg.queue = found.Queue
		r.p1.id, r.sum.id = found.ID, found.ID
	case !cfg.newQueue:
		err := r.guard.do(ctx, func(ctx context.Context) error {
			err := admin.CheckQueuesOrShards(ctx, r.rdb, cfg.prefix(), asynq.NewInspectorFromRedisClient(r.rdb), cfg.queue)
			var ue *admin.UnknownQueueError
			if errors.As(err, &ue) {
				return permanentError{err}
			}
			return err
		})
		var ue *admin.UnknownQueueError
		if errors.As(err, &ue) {
			return exitf(exitUsage, "enqueue: --queue: %s; nothing was queued. To create the queue, add --new-queue (and have a worker serve it: WORKER_QUEUES)", ue)
		}
		if err != nil {
			return r.lost(err)
		}
	}
	err = r.guard.do(ctx, func(ctx context.Context) error {
		var err error
		r.layout, err = tasks.ReadLayout(ctx, r.rdb, cfg.prefix(), cfg.queue)
		return err
	})
	if err != nil {
		return r.interruptedOrLost(err)
	}
	return nil
}

// shardNote says, after a queue's name, how it is split.
func shardNote(l tasks.Layout) string {
	if !l.Sharded() {
		return ""
	}
	return fmt.Sprintf(" (split into %d shards by SubsId: %s)", l.Shards, strings.Join(l.Names()[1:], ", "))
}

// beginBatch creates the batch record or reads the existing one, and says
// what this run does with it: a cancelled batch ends the run.
func (r *enqueueRun) beginBatch(ctx context.Context) error {
	cfg, e, in, p1 := r.cfg, r.e, r.in, r.p1
	var info batch.Info
	created := false
	err := r.guard.do(ctx, func(ctx context.Context) error {
		var err error
		info, created, err = r.store.Begin(ctx, batch.Info{ID: p1.id, File: in.display, Format: in.format, Queue: cfg.queue,
			Origin: origin(e), Lines: p1.lines, Rows: int(p1.rows), ValidRows: int(p1.rows - p1.invalid), InvalidRows: int(p1.invalid)})
		return err
	})
	if err != nil {
		return r.interruptedOrLost(err)
	}
	r.info = info
	switch info.State {
	case batch.StateCancelled:
		return exitf(exitUsage, "enqueue: %s was queued as batch %s on %s and that batch was cancelled, so nothing is queued again. Its record is kept until %s; to queue these rows anyway, change the file (any change makes a new batch).",
			in.display, info.ID, info.Created.Local().Format(time.DateTime), info.Expires.Local().Format(time.DateTime))
	case batch.StateQueued:
		fmt.Fprintf(e.stderr, "enqueue: %s was already queued as batch %s on %s; nothing is queued twice (the batch window ends %s)\n",
			in.display, info.ID, info.Created.Local().Format(time.DateTime), info.Expires.Local().Format(time.DateTime))
	default:
		if !created {
			fmt.Fprintf(e.stderr, "enqueue: resuming batch %s (queue %s), started %s: rows already queued are skipped\n", info.ID, info.Queue, info.Created.Local().Format(time.DateTime))
		} else {
			fmt.Fprintf(e.stderr, "enqueue: batch %s: queueing %d rows to %s%s\n", info.ID, p1.rows-p1.invalid, cfg.queue, shardNote(r.layout))
		}
	}
	return nil
}

// queueRows queues the batch's rows from the validated file, marks the
// batch complete and prints the summary. It ends the run when the batch
// was cancelled, Redis failed or the run was interrupted.
func (r *enqueueRun) queueRows(ctx context.Context) (*queuer, error) {
	cfg, e, in, info := r.cfg, r.e, r.in, r.info
	q := &queuer{ctx: ctx, store: r.store, client: asynq.NewClientFromRedisClient(r.rdb), insp: asynq.NewInspectorFromRedisClient(r.rdb),
		guard: r.guard, id: info.ID, info: info, queue: cfg.queue, layout: r.layout, lines: r.p1.lines, concurrency: cfg.concurrency,
		maxPending: cfg.maxPending, keepFinished: *cfg.keepFinished, skipInvalid: cfg.skipInvalid, problems: r.pp, stderr: e.stderr,
		rdb: r.rdb, prefix: cfg.prefix(), durable: cfg.durable}
	f, err := os.Open(in.path)
	if err != nil {
		return nil, exitf(exitUsage, "enqueue: %s", err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != in.size || !fi.ModTime().Equal(in.modTime) {
		f.Close()
		return nil, exitf(exitUsage, "enqueue: %s changed after it was validated; nothing was queued from it: run the command again on the finished file", in.display)
	}
	rr, err := newRowReader(f, in.display, in.format, in.enc)
	if err != nil {
		f.Close()
		return nil, exitf(exitUsage, "enqueue: %s", err)
	}
	qstart := time.Now()
	prog := startProgress(e.stderr, r.terminal, "queueing", "rows", r.p1.rows, q.handled.Load)
	qerr := q.run(rr)
	prog.finish()
	f.Close()
	sum := &r.sum
	sum.queueTime = time.Since(qstart)
	sum.queued, sum.already = q.queued.Load(), q.already.Load()
	if inv := q.invalid.Load(); inv > sum.invalid {
		sum.invalid = inv
		sum.valid = sum.read - inv
	}
	if qerr == nil && ctx.Err() == nil && !q.cancelled.Load() {
		err = r.guard.do(ctx, func(ctx context.Context) error {
			_, err := r.store.Complete(ctx, info.ID)
			return err
		})
		if err != nil && ctx.Err() == nil {
			qerr = err
		}
	}
	sum.elapsed = time.Since(r.start)
	fmt.Fprintln(e.stdout, sum.line())

	switch {
	case q.cancelled.Load():
		return nil, exitf(exitGaveUp, "enqueue: batch %s was cancelled while it was being queued: queueing stopped, and the jobs this run had just queued were removed", info.ID)
	case qerr != nil && !errors.Is(qerr, context.Canceled):
		if errors.Is(qerr, errRecordGone) || errors.Is(qerr, errFileChanged) {
			return nil, exitf(exitUsage, "enqueue: %s", qerr)
		}
		return nil, r.lost(qerr)
	case ctx.Err() != nil:
		return nil, exitf(exitInterrupted, "enqueue: interrupted: %d rows queued by this run, %d were already queued, %d to go. Nothing is lost: run the same command again to queue the rest of batch %s:\n  %s",
			sum.queued, sum.already, max(sum.valid-sum.queued-sum.already, 0), info.ID, r.resume)
	}
	return q, nil
}

// followBatch ends a run that queued its rows: rows that became invalid and
// rows not confirmed by the replicas fail it; --wait follows the batch to
// its end; --report writes the report.
func (r *enqueueRun) followBatch(ctx context.Context, q *queuer) error {
	cfg, e, info := r.cfg, r.e, r.info
	code := exitOK
	if r.sum.invalid > r.p1.invalid && !cfg.skipInvalid {
		fmt.Fprintf(e.stderr, "enqueue: %d rows became invalid while queueing (see above) and were not queued\n", r.sum.invalid-r.p1.invalid)
		code = exitFailed
	}
	if n := q.unconfirmed.Load(); n > 0 {
		fmt.Fprintf(e.stderr, "enqueue: %d rows of batch %s are queued but were not confirmed by %d Redis replicas within %s: a failover before the replicas catch up could lose them\n",
			n, info.ID, cfg.durable.Replicas, cfg.durable.Timeout)
		code = exitFailed
	}
	if cfg.wait {
		halts := &admin.Halts{Redis: r.rdb, Prefix: cfg.prefix()}
		res, err := follow(ctx, r.store, halts, r.guard, info.ID, cfg.waitTimeout, e.stderr, r.terminal)
		// Printed now: the report and its notes come after it.
		c := exitCode(e, waitOutcome(res, err, cfg.waitTimeout, info.ID, e))
		if c == exitUsage || c == exitInterrupted {
			return exitWith(c)
		}
		code = max(code, c)
	}
	if cfg.report != "" {
		rp := &reporter{store: r.store, guard: r.guard, id: info.ID, showNumbers: cfg.showNumbers, validate: r.validate}
		if err := rp.write(ctx, cfg.report, r.in, e.stdout); err != nil {
			return exitf(exitUsage, "enqueue: report: %s", mask.Text(err.Error()))
		}
		if cfg.report != "-" {
			fmt.Fprintf(e.stderr, "enqueue: report written to %s\n", cfg.report)
		}
	}
	adviseFixedPurge(e, q.fixed, r.start)
	return exitWith(code)
}

// adviseFixedPurge says how to remove the dead letters that the queued rows
// of an export replace: only theirs (--task), and only as they were when
// exported (--until the export time), so a job that died again after the
// export keeps its record. An export without its time is taken to be as
// old as this run.
func adviseFixedPurge(e env, f fixedRows, start time.Time) {
	if len(f.deadTasks) == 0 {
		return
	}
	until := f.exportedAt
	if until.IsZero() || f.unknown && start.Before(until) {
		until = start
	}
	ids := slices.Clone(f.deadTasks)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	fmt.Fprintf(e.stdout, "%s of this file came from dead letters and %s queued as new versions. Their old dead letters can go now with:\n  enqueue dlq purge --until %s --task %s\n",
		rows(int64(len(ids)), "row", "rows"), map[bool]string{true: "is", false: "are"}[len(ids) == 1],
		until.UTC().Format(time.RFC3339Nano), shellQuote(strings.Join(ids, ",")))
}

// waitOutcome prints the outcome table at the end of --wait and returns how
// the wait ended: nil when every row ended and none is dead, else an
// *exitError saying why.
func waitOutcome(res followResult, err error, timeout time.Duration, id string, e env) error {
	switch {
	case errors.Is(err, context.Canceled):
		return exitf(exitInterrupted, "enqueue: stopped following batch %s; its jobs go on. Follow it again with: enqueue batch status --wait %s", id, id)
	case errors.Is(err, batch.ErrNotFound):
		return exitf(exitUsage, "enqueue: batch %s: %s", id, err)
	case err != nil:
		return exitf(exitUsage, "enqueue: %s\nThe jobs go on. Follow the batch again with: enqueue batch status --wait %s", mask.Text(err.Error()), id)
	}
	outcomeTable(e.stdout, res.st)
	switch {
	case len(res.halts) > 0:
		return exitf(exitGaveUp, "enqueue: stopped waiting: %s\nFix the cause, then follow the batch again with: enqueue batch status --wait %s", haltReason(res.halts), id)
	case res.timeout:
		return exitf(exitGaveUp, "enqueue: gave up waiting after %s (--wait-timeout): %d of %d rows have not ended (pending %d, retrying %d, halted %d). They go on; follow them with: enqueue batch status --wait %s",
			timeout, res.st.Queued-res.st.Ended(), res.st.Queued, res.st.Pending, res.st.Retrying, res.st.Halted, id)
	case res.st.State == batch.StateInterrupted:
		return exitf(exitGaveUp, "enqueue: every row queued has ended, but batch %s was not queued to the end: the enqueue that queued it stopped. Run it again to queue the rest", id)
	case res.st.State == batch.StateCancelled:
		return exitf(exitGaveUp, "enqueue: batch %s was cancelled", id)
	case res.st.Dead > 0:
		return exitf(exitFailed, "enqueue: %s dead; see them with: enqueue dlq list --batch %s%s", rows(res.st.Dead, "row is", "rows are"), id, deadHint(res.st, id))
	}
	return nil
}

// rows says "1 row is" or "N rows are".
func rows(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// origin names who runs the command, for batch status.
func origin(e env) string {
	name := e.getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// pass1 is what the validation pass found.
type pass1 struct {
	id            string
	legacyIDs     []string // the ids earlier versions gave the file
	rows, invalid int64
	warned        int64 // valid rows with warnings
	lines         int
}

// validatePass reads every row of the input, prints the problems, and
// hashes the content into the batch id.
func validatePass(ctx context.Context, in *input, legacyQueues []string, pp *problemPrinter, validate func(*tasks.Update) error,
	w io.Writer, terminal bool) (pass1, error) {
	f, err := os.Open(in.path)
	if err != nil {
		return pass1{}, err
	}
	defer f.Close()
	h := batch.NewHasher(in.hashFormat())
	hs := []io.Writer{h}
	var legacy []*batch.Hasher
	formats := []string{in.hashFormat()}
	if lf := in.legacyHashFormat(); lf != in.hashFormat() {
		// Earlier versions counted the encoding only when --encoding named it.
		formats = append(formats, lf)
		legacy = append(legacy, batch.NewHasher(lf))
		hs = append(hs, legacy[len(legacy)-1])
	}
	for _, hf := range formats {
		for _, q := range legacyQueues {
			legacy = append(legacy, batch.NewQueueHasher(hf, q))
			hs = append(hs, legacy[len(legacy)-1])
		}
	}
	cr := &countingReader{r: io.TeeReader(f, io.MultiWriter(hs...))}
	var prog *progress
	if in.size > 8<<20 {
		prog = startProgress(w, terminal, "validating", "bytes", in.size, cr.n.Load)
	}
	defer func() {
		if prog != nil {
			prog.finish()
		}
	}()
	rr, err := newRowReader(cr, in.display, in.format, in.enc)
	if err != nil {
		return pass1{}, err
	}
	var p pass1
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return pass1{}, ctx.Err()
		}
		r, err := rr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return pass1{}, err
		}
		p.rows++
		problems := checkRow(&r, validate)
		if len(problems) > 0 {
			p.invalid++
			pp.row(r.line, problems)
		}
		if ws := rowWarnings(&r, time.Now()); len(ws) > 0 {
			if len(problems) == 0 {
				p.warned++
			}
			pp.row(r.line, ws)
		}
	}
	if _, err := io.Copy(io.Discard, cr); err != nil { // hash what the reader left (trailing blank lines)
		return pass1{}, err
	}
	p.lines = rr.lastLine()
	p.id = h.ID()
	for _, l := range legacy {
		p.legacyIDs = append(p.legacyIDs, l.ID())
	}
	return p, nil
}

// legacyQueues are the queues whose batch ids of earlier versions, which
// hashed the queue, a run looks for: the one given and the CLI's default.
func legacyQueues(queue string) []string {
	qs := []string{queue}
	for _, q := range []string{tasks.DefaultBulkQueue, tasks.DefaultLiveQueue} {
		if !slices.Contains(qs, q) {
			qs = append(qs, q)
		}
	}
	return qs
}

// deadHint says what to do about a batch's dead rows, by their codes: rows
// whose retries ran out (a transient code, the max age) are requeued by
// code; rows the API refused need fixing, through an export.
func deadHint(st batch.Status, id string) string {
	var again []string
	fix := false
	var coded int64
	for _, c := range st.Codes {
		if c.Outcome != batch.OutcomeDead {
			continue
		}
		coded += c.Rows
		if needsFix(c.Code) {
			fix = true
		} else {
			again = append(again, c.Code)
		}
	}
	if coded < st.Dead {
		fix = true // rows without a code: look at them
	}
	var b strings.Builder
	for _, code := range again {
		fmt.Fprintf(&b, "; their retries ran out: once the cause is gone, run them again with: enqueue dlq requeue --code %s --batch %s", shellQuote(code), id)
	}
	if fix {
		fmt.Fprintf(&b, "; rows the API refused need fixing: enqueue dlq export --batch %s --out dead.csv, fix the file, and queue it", id)
	}
	return b.String()
}

// needsFix reports whether a dead job with code fails again as it is: the
// API refused it, or the payload is unusable.
func needsFix(code string) bool {
	switch code {
	case "Job.Malformed", "Job.UnknownType":
		return true
	case "Job.MaxAgePassed", deadletter.CodeRetryLimit, deadletter.CodeUnsupportedSchema:
		return false
	}
	return errclass.Classify(code) == errclass.Permanent
}
