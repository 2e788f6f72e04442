package enqueuecli

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/envflag"
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
	return rdb, &redisGuard{timeout: sc.redisTimeout, out: nopWriter{}, where: sc.redis.String()}, nil
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// fail prints err for a subcommand and returns the exit status.
func fail(e env, name string, err error) int {
	if errors.Is(err, envflag.ErrHelp) {
		return exitOK
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(e.stderr, "%s: interrupted\n", name)
		return exitInterrupted
	}
	fmt.Fprintf(e.stderr, "%s: %s\n", name, dypls.Mask(err.Error()))
	return exitUsage
}

func runBatch(ctx context.Context, args []string, e env) int {
	const name = "enqueue batch"
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprint(e.stderr, batchHelp)
			return exitUsage
		}
		fmt.Fprint(e.stdout, batchHelp)
		return exitOK
	}
	verb := args[0]
	sc := newSub(name+" "+verb, e)
	var wait bool
	var waitTimeout time.Duration
	switch verb {
	case "status":
		sc.set.FlagSet().BoolVar(&wait, "wait", false, "")
		sc.set.FlagSet().DurationVar(&waitTimeout, "wait-timeout", 0, "")
	case "cancel":
	default:
		fmt.Fprintf(e.stderr, "%s: unknown command %q: want status or cancel (see enqueue batch --help)\n", name, verb)
		return exitUsage
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
		return cancelBatch(ctx, e, store, rdb, guard, sc.pos[0])
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
				st.Queue, st.Rows, st.Queued, st.Ended(), st.Dead, st.File)
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
	return waitOutcome(res, err, waitTimeout, id, e)
}

func printBatch(e env, st batch.Status) {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "batch\t%s\n", st.ID)
	fmt.Fprintf(tw, "file\t%s (%s, %d rows: %d valid, %d invalid)\n", st.File, st.Format, st.Rows, st.ValidRows, st.InvalidRows)
	fmt.Fprintf(tw, "queue\t%s\n", st.Queue)
	state := st.State
	switch st.State {
	case batch.StateQueueing:
		state += " (not every row is queued yet: if no enqueue is running, run the same command again to resume)"
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

// cancelBatch marks the batch cancelled and removes its jobs that have not
// run: every line the record shows pending, retrying or halted whose task
// asynq still holds pending, scheduled or waiting to retry.
func cancelBatch(ctx context.Context, e env, store *batch.Store, rdb redis.UniversalClient, guard *redisGuard, id string) int {
	const name = "enqueue batch cancel"
	prev, err := store.Cancel(ctx, id)
	if err != nil {
		return fail(e, name, fmt.Errorf("%s: %w", id, err))
	}
	st, err := store.Status(ctx, id)
	if err != nil {
		return fail(e, name, err)
	}
	if prev == batch.StateQueueing {
		fmt.Fprintf(e.stderr, "%s: batch %s was still being queued: an enqueue still running stops at its next chunk of rows and removes what it just queued\n", name, id)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	var removed, running, gone atomic.Int64
	work := make(chan batch.Row, 256)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var firstErr error
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				ok, state, err := cancelRow(ctx, store, insp, guard, id, st.Queue, r)
				switch {
				case err != nil:
					errOnce.Do(func() { firstErr = err })
				case ok:
					removed.Add(1)
				case state == asynq.TaskStateActive:
					running.Add(1)
				default:
					gone.Add(1)
				}
			}
		}()
	}
	var scanned atomic.Int64
	prog := startProgress(e.stderr, isTerminal(e.stderr), "cancelling", "lines", int64(st.Lines), scanned.Load)
	const page = 4 * chunkLines
	for first := 0; first <= st.Lines && ctx.Err() == nil; first += page {
		last := min(first+page-1, st.Lines)
		var outs []string
		err := guard.do(ctx, func(ctx context.Context) error {
			var err error
			outs, err = store.Outcomes(ctx, id, first, last)
			return err
		})
		if err != nil {
			errOnce.Do(func() { firstErr = err })
			break
		}
		need := false
		for _, o := range outs {
			if o == batch.OutcomePending || o == batch.OutcomeRetrying || o == batch.OutcomeHalted {
				need = true
				break
			}
		}
		if need {
			var rows []batch.Row
			err := guard.do(ctx, func(ctx context.Context) error {
				var err error
				rows, err = store.Rows(ctx, id, first, last)
				return err
			})
			if err != nil {
				errOnce.Do(func() { firstErr = err })
				break
			}
			for _, r := range rows {
				if r.Outcome == batch.OutcomePending || r.Outcome == batch.OutcomeRetrying || r.Outcome == batch.OutcomeHalted {
					work <- r
				}
			}
		}
		scanned.Store(int64(last))
	}
	close(work)
	wg.Wait()
	prog.finish()
	if err := ctx.Err(); err != nil {
		return fail(e, name, err)
	}
	if firstErr != nil {
		fmt.Fprintf(e.stderr, "%s: %s\nThe batch is marked cancelled; %d jobs were removed so far. Run the same command again to remove the rest.\n",
			name, dypls.Mask(firstErr.Error()), removed.Load())
		return exitUsage
	}
	fmt.Fprintf(e.stdout, "batch %s cancelled: %d jobs not yet run were removed", id, removed.Load())
	if n := running.Load(); n > 0 {
		fmt.Fprintf(e.stdout, "; %d were running and will finish", n)
	}
	if n := gone.Load(); n > 0 {
		fmt.Fprintf(e.stdout, "; %d had already finished", n)
	}
	fmt.Fprintln(e.stdout)
	return exitOK
}

// cancelRow removes the task of one row if it has not run yet, and marks
// the row cancelled.
func cancelRow(ctx context.Context, store *batch.Store, insp *asynq.Inspector, guard *redisGuard, id, queue string, r batch.Row) (bool, asynq.TaskState, error) {
	var info *asynq.TaskInfo
	err := guard.do(ctx, func(context.Context) error {
		var err error
		info, err = insp.GetTaskInfo(queue, r.TaskID)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			return permanentError{err}
		}
		return err
	})
	if err != nil {
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			return false, 0, nil
		}
		return false, 0, err
	}
	switch info.State {
	case asynq.TaskStatePending, asynq.TaskStateScheduled, asynq.TaskStateRetry, asynq.TaskStateAggregating:
	default:
		return false, info.State, nil
	}
	err = guard.do(ctx, func(context.Context) error {
		err := insp.DeleteTask(queue, r.TaskID)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			return permanentError{err}
		}
		if err != nil && info.State == asynq.TaskStatePending {
			// It became active meanwhile.
			if i2, err2 := insp.GetTaskInfo(queue, r.TaskID); err2 == nil && i2.State == asynq.TaskStateActive {
				return permanentError{errActive}
			}
		}
		return err
	})
	switch {
	case errors.Is(err, errActive):
		return false, asynq.TaskStateActive, nil
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return false, 0, nil
	case err != nil:
		return false, 0, err
	}
	err = guard.do(ctx, func(ctx context.Context) error {
		return store.Mark(ctx, id, r.Line, batch.RowState{Outcome: batch.OutcomeCancelled, Message: "removed by enqueue batch cancel before it ran"})
	})
	return err == nil, asynq.TaskStatePending, err
}

var errActive = errors.New("task is running")
