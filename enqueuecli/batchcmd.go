package enqueuecli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/envflag"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// subcommand holds what every subcommand parses: the common settings and
// its positional arguments.
type subcommand struct {
	*common
	name         string // the command, "enqueue dlq list"
	set          *envflag.Set
	redisTimeout time.Duration
	pos          []string
}

// newSub declares a subcommand's settings; add flags to set.FlagSet()
// before parse.
func newSub(name string, e env) *subcommand {
	s := envflag.New(name, "", e.getenv)
	sc := &subcommand{set: s, name: name}
	s.FlagSet().DurationVar(&sc.redisTimeout, "redis-timeout", 60*time.Second, "")
	sc.common = addCommon(s)
	return sc
}

func (sc *subcommand) parse(args []string, e env, help string) error {
	pos, err := parseArgs(sc.set, sc.name, args, func() {
		fmt.Fprint(e.stdout, help+"\nCommon flags\n  --redis-timeout D     how long to retry while Redis is unreachable before\n                        giving up with exit 2 (default 60s)\n\n"+settingsHelp(sc.set))
	})
	if err != nil {
		return err
	}
	sc.pos = pos
	if sc.redisTimeout <= 0 {
		return usagef("--redis-timeout %s: want a positive duration such as 60s", sc.redisTimeout)
	}
	return sc.common.finish(e)
}

// open connects to Redis.
func (sc *subcommand) open(ctx context.Context) (redis.UniversalClient, *redisGuard, error) {
	rdb, err := sc.connect(ctx, min(sc.redisTimeout, 10*time.Second))
	if err != nil {
		return nil, nil, err
	}
	return rdb, &redisGuard{timeout: sc.redisTimeout, out: io.Discard, where: sc.redis.String()}, nil
}

// verbOf reads the verb of subcommand name, its first argument, which must
// be one of verbs. It ends the command (ok false, with the exit status
// code) when there is none (help on stderr, a usage error), when it asks
// for help (-h, --help or help: help on stdout) and when it is unknown.
func verbOf(e env, name, help string, args []string, verbs ...string) (verb string, code int, ok bool) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprint(e.stderr, help)
			return "", exitUsage, false
		}
		fmt.Fprint(e.stdout, help)
		return "", exitOK, false
	}
	if verb = args[0]; !slices.Contains(verbs, verb) {
		want := strings.Join(verbs[:len(verbs)-1], ", ") + " or " + verbs[len(verbs)-1]
		fmt.Fprintf(e.stderr, "%s: unknown command %q: want %s (see %s --help)\n", name, verb, want, name)
		return "", exitUsage, false
	}
	return verb, exitOK, true
}

// fail prints err for a subcommand and returns the exit status.
func fail(e env, name string, err error) int { return exitCode(e, failure(name, err)) }

// failure is the end of subcommand name by err: none after help, an
// interruption, else a usage error, with its message after name.
func failure(name string, err error) error {
	if errors.Is(err, envflag.ErrHelp) {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return exitf(exitInterrupted, "%s: interrupted", name)
	}
	return exitf(exitUsage, "%s: %s", name, mask.Text(err.Error()))
}

func runBatch(ctx context.Context, args []string, e env) int {
	const name = "enqueue batch"
	verb, code, ok := verbOf(e, name, batchHelp, args, "status", "cancel")
	if !ok {
		return code
	}
	sc := newSub(name+" "+verb, e)
	var wait bool
	var waitTimeout time.Duration
	if verb == "status" {
		sc.set.FlagSet().BoolVar(&wait, "wait", false, "")
		sc.set.FlagSet().DurationVar(&waitTimeout, "wait-timeout", 0, "")
	}
	if err := sc.parse(args[1:], e, batchHelp); err != nil {
		return fail(e, name, err)
	}
	switch {
	case verb == "cancel" && len(sc.pos) != 1, verb == "status" && len(sc.pos) > 1:
		return fail(e, name, usagef("%s takes one batch id (see enqueue batch --help)", verb))
	case verb == "status" && wait && len(sc.pos) == 0:
		return fail(e, name, usagef("status --wait needs a batch id"))
	}
	for _, id := range sc.pos {
		if !batch.ValidID(id) {
			return fail(e, name, usagef("%q is not a batch id: ids look like bq4hz7kpmw2rtx9ca (see enqueue batch status)", id))
		}
	}
	rdb, guard, err := sc.open(ctx)
	if err != nil {
		return fail(e, name, err)
	}
	defer rdb.Close()
	guard.out = e.stderr
	store := &batch.Store{Redis: rdb, Prefix: sc.prefix()}
	if verb == "cancel" {
		return exitCode(e, cancelBatch(ctx, e, store, rdb, guard, sc.pos[0]))
	}
	if len(sc.pos) == 0 {
		list, err := store.List(ctx, 0)
		if err != nil {
			return fail(e, name, err)
		}
		if len(list) == 0 {
			fmt.Fprintln(e.stdout, "no batches within the batch window")
			return exitOK
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "BATCH\tCREATED\tSTATE\tQUEUE\tROWS\tQUEUED\tENDED\tDEAD\tFILE")
		for _, st := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", st.ID, st.Created.Local().Format(time.DateTime), st.State,
				st.Queue, st.Rows, st.Queued, st.Ended(), st.Dead, mask.Text(st.File))
		}
		tw.Flush()
		return exitOK
	}
	id := sc.pos[0]
	st, err := store.Status(ctx, id)
	if err != nil {
		return fail(e, name, fmt.Errorf("%s: %w", id, err))
	}
	printBatch(e, st)
	if !wait {
		fmt.Fprintln(e.stdout)
		outcomeTable(e.stdout, st)
		return exitOK
	}
	halts := &admin.Halts{Redis: rdb, Prefix: sc.prefix()}
	res, err := follow(ctx, store, halts, guard, id, waitTimeout, e.stderr, isTerminal(e.stderr))
	return exitCode(e, waitOutcome(res, err, waitTimeout, id, e))
}

func printBatch(e env, st batch.Status) {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "batch\t%s\n", st.ID)
	fmt.Fprintf(tw, "file\t%s (%s, %d rows: %d valid, %d invalid)\n", mask.Text(st.File), st.Format, st.Rows, st.ValidRows, st.InvalidRows)
	fmt.Fprintf(tw, "queue\t%s\n", st.Queue)
	state := st.State
	switch st.State {
	case batch.StateQueueing:
		state += " (an enqueue is queueing its rows)"
	case batch.StateInterrupted:
		state += fmt.Sprintf(" (the enqueue that queued it stopped with %d of %d valid rows queued: run the same command again to queue the rest)", st.Queued, st.ValidRows)
	case batch.StateQueued:
		if st.Done() {
			state += ", every row has ended"
		} else {
			state += fmt.Sprintf(", %d of %d rows have ended", st.Ended(), st.Queued)
		}
	}
	fmt.Fprintf(tw, "state\t%s\n", state)
	fmt.Fprintf(tw, "created\t%s by %s\n", st.Created.Local().Format(time.DateTime), st.Origin)
	fmt.Fprintf(tw, "record kept until\t%s\n", st.Expires.Local().Format(time.DateTime))
	fmt.Fprintf(tw, "rows\t%s\n", liveLine(st, 0))
	tw.Flush()
}

// cancelSettle bounds how long batch cancel waits for the rows being
// called at the moment of the cancel: two API calls and the halt wait.
var cancelSettle = 3 * time.Minute

// cancelMessage is the reason recorded on the rows a cancel ends.
const cancelMessage = "cancelled by enqueue batch cancel before it was called"

// cancelBatch stops a batch at once and reports exact counts.
//
// The cancelled mark on the batch takes effect for every row not yet called:
// a worker reads it when it picks a row, and ends the row cancelled without
// calling the API. Only the rows being run at the moment of the mark (the
// batch's active tasks) can still be called; the command waits for them, so
// that the counts it prints are final. Then it ends the batch's other open
// rows cancelled in the record, a page of lines per script, and last, as
// cleanup, deletes their jobs from asynq (without it the workers would end
// them one by one, still without a call). It returns an *exitError when it
// ends otherwise than with the counts printed.
func cancelBatch(ctx context.Context, e env, store *batch.Store, rdb redis.UniversalClient, guard *redisGuard, id string) error {
	const name = "enqueue batch cancel"
	start := time.Now()
	var prev string
	err := guard.do(ctx, func(ctx context.Context) error {
		var err error
		prev, err = store.Cancel(ctx, id)
		if errors.Is(err, batch.ErrNotFound) {
			return permanentError{err}
		}
		return err
	})
	if err != nil {
		return failure(name, fmt.Errorf("%s: %w", id, err))
	}
	st, err := store.Status(ctx, id)
	if err != nil {
		return failure(name, err)
	}
	if prev == batch.StateQueueing {
		fmt.Fprintf(e.stderr, "%s: batch %s was still being queued: an enqueue still running stops at its next chunk of rows and removes what it just queued; those rows are counted cancelled as it stops, after the counts below (run batch status for the final ones)\n", name, id)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	var (
		running map[taskRef]int
		queues  []string
	)
	err = guard.do(ctx, func(ctx context.Context) error {
		var err error
		if queues, err = batchQueues(ctx, rdb, insp, store.Prefix, st.Queue); err != nil {
			return err
		}
		running, err = activeRows(insp, queues, id)
		return err
	})
	if err != nil {
		return failure(name, err)
	}
	if n := len(running); n > 0 {
		fmt.Fprintf(e.stderr, "%s: waiting for the %s being run at the cancel to finish\n", name, rows(int64(n), "row", "rows"))
	}
	deadline := time.Now().Add(cancelSettle)
	awaitRunning(ctx, insp, running, deadline)
	if err := ctx.Err(); err != nil {
		return exitf(exitInterrupted, "%s: interrupted; batch %s is cancelled all the same: no row not yet called will be. Run the same command again for the counts", name, id)
	}
	keep := make([]int, 0, len(running))
	for _, line := range running {
		keep = append(keep, line)
	}
	err = guard.do(ctx, func(ctx context.Context) error {
		_, err := store.CancelOpen(ctx, id, 1, st.Lines, keep, cancelMessage)
		return err
	})
	if err == nil {
		st, err = store.Status(ctx, id)
	}
	if err == nil {
		st, err = settleCalledRows(ctx, store, insp, guard, st, queues, deadline.Add(cancelSettle))
	}
	if err != nil {
		return failure(name, fmt.Errorf("%w (batch %s is cancelled all the same: no row not yet called will be; run the same command again for the counts)", err, id))
	}
	printCancelled(e, id, st, time.Since(start), len(keep))
	removed, err := removeCancelledJobs(ctx, e, store, insp, guard, st, queues)
	if err != nil {
		return exitf(exitUsage, "%s: cleanup: %s; %d jobs were removed. The batch is cancelled all the same: workers end its jobs left in the queue without a call. Run the same command again to remove them",
			name, mask.Text(err.Error()), removed)
	}
	if removed > 0 {
		fmt.Fprintf(e.stdout, "removed %d of its jobs from queue %s\n", removed, strings.Join(queues, ", "))
	}
	return nil
}

// taskRef names one asynq task.
type taskRef struct{ queue, id string }

// batchQueues returns the queues a batch's jobs can be in, and that an
// operator command on queue acts on: the queue, its shards (see
// tasks.Layout), and the shards of an earlier split of it that asynq still
// knows.
func batchQueues(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, prefix, queue string) ([]string, error) {
	l, err := tasks.ReadLayout(ctx, rdb, prefix, queue)
	if err != nil {
		return nil, err
	}
	known, err := insp.Queues()
	if err != nil {
		return nil, err
	}
	return l.Holders(known), nil
}

// awaitRunning waits until none of the running rows' tasks (→ line) is
// active any more, the deadline passes or ctx ends; it deletes from
// running the tasks that stopped.
func awaitRunning(ctx context.Context, insp *asynq.Inspector, running map[taskRef]int, deadline time.Time) {
	for len(running) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		for tid := range running {
			info, err := insp.GetTaskInfo(tid.queue, tid.id)
			if err == nil && info.State == asynq.TaskStateActive {
				continue
			}
			if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
				continue // Redis trouble: ask again
			}
			delete(running, tid)
		}
		if len(running) > 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// printCancelled prints the counts st of batch id after a cancel that
// took took, and the rows that may still change: kept rows still being run
// at the cancel, and rows retrying or halted.
func printCancelled(e env, id string, st batch.Status, took time.Duration, kept int) {
	fmt.Fprintf(e.stdout, "batch %s cancelled in %s: none of its rows is called from now on\n", id, took.Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "rows: applied %d, superseded %d, dead %d, cancelled %d (no call after the cancel)", st.Applied, st.Superseded, st.Dead, st.Cancelled)
	if st.Duplicate > 0 {
		fmt.Fprintf(e.stdout, ", duplicate %d", st.Duplicate)
	}
	if st.Invalid > 0 {
		fmt.Fprintf(e.stdout, ", invalid %d (not queued)", st.Invalid)
	}
	fmt.Fprintln(e.stdout)
	if kept > 0 {
		fmt.Fprintf(e.stdout, "%s being run at the cancel did not finish within %s (a worker may have stopped holding them): each may still end applied or dead; see them with: enqueue batch status %s\n",
			rows(int64(kept), "row", "rows"), cancelSettle, id)
	}
	if n := st.Retrying + st.Halted; n > 0 {
		fmt.Fprintf(e.stdout, "%s retrying or halted at the cancel did not end within %s (no worker picked them up): a worker ends each cancelled, or applied if an earlier attempt applied it; see them with: enqueue batch status %s\n",
			rows(n, "row", "rows"), cancelSettle, id)
	}
}

// settleCalledRows has the workers end the batch's retrying and halted rows
// now rather than at their next retry, and waits for them until deadline.
// An attempt of each was made, and its outcome may be unknown: only the
// worker can end such a row, reading the binding first when it must, so
// the record does not call a row cancelled that an earlier attempt
// applied. It returns the batch's status at the end.
func settleCalledRows(ctx context.Context, store *batch.Store, insp *asynq.Inspector, guard *redisGuard, st batch.Status, queues []string, deadline time.Time) (batch.Status, error) {
	if st.Retrying+st.Halted == 0 {
		return st, nil
	}
	err := rowPages(ctx, store, guard, st, func(rs []batch.Row, _ int) bool {
		for _, r := range rs {
			if r.Outcome == batch.OutcomeRetrying || r.Outcome == batch.OutcomeHalted {
				// A task waiting for its retry runs now; one already
				// pending or active is refused, and comes soon anyway.
				for _, q := range queues {
					if err := insp.RunTask(q, r.TaskID); !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
						break
					}
				}
			}
		}
		return true
	})
	if err != nil {
		return st, err
	}
	for st.Retrying+st.Halted > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		err := guard.do(ctx, func(ctx context.Context) error {
			var err error
			st, err = store.Status(ctx, st.ID)
			return err
		})
		if err != nil {
			return st, err
		}
	}
	return st, ctx.Err()
}

// activeRows returns the tasks of batch id that asynq holds active in
// queues (being run), with their lines. It reads the queues' active tasks
// only: as many as the workers run at once.
func activeRows(insp *asynq.Inspector, queues []string, id string) (map[taskRef]int, error) {
	out := map[taskRef]int{}
	for _, q := range queues {
		if err := activeRowsIn(insp, q, id, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// activeRowsIn adds to out the tasks of batch id active in queue.
func activeRowsIn(insp *asynq.Inspector, queue, id string, out map[taskRef]int) error {
	for page := 1; ; page++ {
		infos, err := insp.ListActiveTasks(queue, asynq.PageSize(1000), asynq.Page(page))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, in := range infos {
			var p struct {
				Meta *tasks.Meta `json:"_meta"`
			}
			if json.Unmarshal(in.Payload, &p) == nil && p.Meta != nil && p.Meta.Batch == id {
				out[taskRef{queue, in.ID}] = p.Meta.Line
			}
		}
		if len(infos) < 1000 {
			return nil
		}
	}
}

// deleteFrom deletes task tid from every one of queues that has it (a row
// queued again into another shard after a change of the split has two). It
// returns a permanentError when none deleted it: gone already, or being run
// (asynq does not delete an active task).
func deleteFrom(insp *asynq.Inspector, queues []string, tid string) error {
	var last error
	deleted := false
	for _, q := range queues {
		err := insp.DeleteTask(q, tid)
		switch {
		case err == nil:
			deleted = true
		case isActiveRefusal(err):
			last = err
		case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
			if last == nil {
				last = err
			}
		default:
			return err
		}
	}
	if deleted {
		return nil
	}
	return permanentError{last}
}

// removeCancelledJobs deletes from asynq the jobs of the batch's cancelled
// rows that are still there, and returns how many it deleted.
func removeCancelledJobs(ctx context.Context, e env, store *batch.Store, insp *asynq.Inspector, guard *redisGuard, st batch.Status, queues []string) (int64, error) {
	var removed, scanned atomic.Int64
	work := make(chan string, 256)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var firstErr error
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tid := range work {
				err := guard.do(ctx, func(context.Context) error {
					return deleteFrom(insp, queues, tid)
				})
				switch {
				case err == nil:
					removed.Add(1)
				case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound), isActiveRefusal(err):
					// Gone already, or being run (asynq does not delete an
					// active task): the worker ends it without a call.
				default:
					errOnce.Do(func() { firstErr = err })
				}
			}
		}()
	}
	prog := startProgress(e.stderr, isTerminal(e.stderr), "removing jobs", "lines", int64(st.Lines), scanned.Load)
	err := rowPages(ctx, store, guard, st, func(rs []batch.Row, last int) bool {
		for _, r := range rs {
			if r.Outcome == batch.OutcomeCancelled && r.Code == "" {
				work <- r.TaskID
			}
		}
		scanned.Store(int64(last))
		return firstErr == nil
	})
	if err != nil {
		errOnce.Do(func() { firstErr = err })
	}
	close(work)
	wg.Wait()
	prog.finish()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return removed.Load(), firstErr
}

// rowPages reads the rows of batch st a page of lines at a time, through
// guard, and hands each page to fn with its last line, until every line
// is read, ctx ends or fn returns false.
func rowPages(ctx context.Context, store *batch.Store, guard *redisGuard, st batch.Status, fn func(rs []batch.Row, last int) bool) error {
	const page = 4 * chunkLines
	for first := 1; first <= st.Lines && ctx.Err() == nil; first += page {
		last := min(first+page-1, st.Lines)
		var rs []batch.Row
		err := guard.do(ctx, func(ctx context.Context) error {
			var err error
			rs, err = store.Rows(ctx, st.ID, first, last)
			return err
		})
		if err != nil {
			return err
		}
		if !fn(rs, last) {
			return nil
		}
	}
	return nil
}

// isActiveRefusal reports asynq's refusal to delete a task being run.
func isActiveRefusal(err error) bool {
	return err != nil && strings.Contains(err.Error(), "active state")
}
