package enqueuecli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/tasks"
)

// chunkLines is how many lines the queueing pass reads from the record and
// records at once: four detail buckets, half a version block.
const chunkLines = 4 * batch.BucketLines

// qrow is one row in the queueing pass.
type qrow struct {
	line    int
	u       tasks.Update
	readErr error
	version int64

	// The dead job the row was exported from, if any, and when.
	deadTask, exportedAt string

	// What became of it: outcome "" means not done (interrupted).
	outcome       string
	queue         string // the queue it went to: the batch's queue or its shard
	taskID        string // when not the default task id
	code, message string
	fresh         bool // queued by this run
}

// chunk is the rows of chunkLines consecutive lines.
type chunk struct {
	index     int
	rows      []*qrow
	remaining atomic.Int32
	todo      int64             // rows handed to the enqueueing goroutines
	primary   map[string]string // with --durable: by queue, the id of the Redis primary holding it before the rows were queued
}

// pendingPoll is how often a run held back by --max-pending reads the
// batch's counters.
const pendingPoll = 250 * time.Millisecond

type workItem struct {
	c *chunk
	r *qrow
}

// queuer is the second pass: it queues every valid row not queued yet,
// concurrently, recording each chunk of lines in the batch record.
type queuer struct {
	ctx          context.Context // ends on Ctrl-C: no new rows are started
	store        *batch.Store
	client       *asynq.Client
	insp         *asynq.Inspector
	guard        *redisGuard
	id           string
	info         batch.Info   // the batch record: the form of its task ids
	queue        string       // the batch's queue
	layout       tasks.Layout // how the queue is split: each row goes to its SubsId's shard
	lines        int          // last line of the input
	concurrency  int
	maxPending   int           // open rows allowed (0: no limit)
	keepFinished time.Duration // asynq's retention of a finished row's task
	skipInvalid  bool
	problems     *problemPrinter
	stderr       io.Writer
	pmu          sync.Mutex

	// With --durable: each chunk's rows are confirmed on the replicas
	// once recorded; unconfirmed counts the fresh rows that were not.
	rdb         redis.UniversalClient
	prefix      string
	durable     *tasks.Durability
	unconfirmed atomic.Int64

	work  chan workItem
	slots chan struct{}
	wg    sync.WaitGroup

	curBlock   int
	blockFirst int64

	stopFlag  atomic.Bool
	errMu     sync.Mutex
	err       error
	cancelled atomic.Bool

	handled, queued, already, invalid atomic.Int64
	unrecorded                        atomic.Int64 // rows handed out, their chunk not recorded yet
	heldBack                          bool         // --max-pending held the run back once

	fixedMu sync.Mutex
	fixed   fixedRows
}

// fixedRows are the rows of a dead-letter export that are queued: the task
// ids of the dead jobs they replace, and the earliest export time.
type fixedRows struct {
	deadTasks  []string
	exportedAt time.Time // zero when no row said
	unknown    bool      // a row did not say when it was exported
}

// noteFixed remembers that r, a row exported from a dead job, is queued.
func (q *queuer) noteFixed(r *qrow) {
	if r.deadTask == "" {
		return
	}
	q.fixedMu.Lock()
	defer q.fixedMu.Unlock()
	q.fixed.deadTasks = append(q.fixed.deadTasks, r.deadTask)
	t, err := time.Parse(time.RFC3339Nano, r.exportedAt)
	switch {
	case err != nil:
		q.fixed.unknown = true
	case q.fixed.exportedAt.IsZero() || t.Before(q.fixed.exportedAt):
		q.fixed.exportedAt = t
	}
}

func (q *queuer) stopped() bool { return q.stopFlag.Load() || q.ctx.Err() != nil }

func (q *queuer) fail(err error) {
	q.errMu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.errMu.Unlock()
	q.stopFlag.Store(true)
}

func (q *queuer) firstErr() error {
	q.errMu.Lock()
	defer q.errMu.Unlock()
	return q.err
}

// run queues the rows of rr and returns the first error that stopped it.
func (q *queuer) run(rr *rowReader) error {
	q.work = make(chan workItem, 2*q.concurrency)
	q.slots = make(chan struct{}, 4+q.concurrency/64)
	q.curBlock = -1
	for range q.concurrency {
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			for it := range q.work {
				if !q.stopped() {
					q.enqueue(it.r)
				}
				if it.c.remaining.Add(-1) == 0 {
					q.record(it.c)
				}
			}
		}()
	}
	var cur *chunk
	for !q.stopped() {
		r, err := rr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			q.fail(err)
			break
		}
		if r.line > q.lines {
			// Versions were reserved for the lines the first pass saw.
			q.fail(permanentError{errFileChanged})
			break
		}
		idx := r.line / chunkLines
		if cur != nil && idx != cur.index {
			q.dispatch(cur)
			cur = nil
		}
		if cur == nil {
			cur = &chunk{index: idx}
		}
		cur.rows = append(cur.rows, &qrow{line: r.line, u: r.u, readErr: r.err, deadTask: r.deadTask, exportedAt: r.exportedAt})
	}
	if cur != nil && !q.stopped() {
		q.dispatch(cur)
	}
	close(q.work)
	q.wg.Wait()
	return q.firstErr()
}

// dispatch skips the rows of c the record already has, gives the others
// their versions and hands them to the workers.
func (q *queuer) dispatch(c *chunk) {
	select {
	case q.slots <- struct{}{}:
	case <-q.ctx.Done():
		return
	}
	first := c.index * chunkLines
	var outs []string
	err := q.guard.do(q.ctx, func(ctx context.Context) error {
		var err error
		outs, err = q.store.Outcomes(ctx, q.id, first, first+chunkLines-1)
		return err
	})
	if err != nil {
		q.fail(err)
		<-q.slots
		return
	}
	var todo []*qrow
	for _, r := range c.rows {
		switch outs[r.line-first] {
		case "":
		case batch.OutcomeInvalid:
			q.invalid.Add(1)
			q.handled.Add(1)
			continue
		case batch.OutcomeDuplicate, batch.OutcomeCancelled:
			q.already.Add(1)
			q.handled.Add(1)
			continue
		default:
			q.noteFixed(r) // queued by an earlier run
			q.already.Add(1)
			q.handled.Add(1)
			continue
		}
		if r.readErr != nil {
			q.markInvalid(r, checkRow(&inRow{line: r.line, err: r.readErr}, nil))
			continue
		}
		v, err := q.version(r.line)
		if err != nil {
			q.fail(err)
			<-q.slots
			return
		}
		r.version = v
		r.queue = q.layout.QueueFor(r.u.SubsId)
		todo = append(todo, r)
	}
	if len(todo) == 0 {
		q.record(c)
		return
	}
	if !q.awaitRoom(len(todo)) {
		<-q.slots
		return
	}
	if err := q.readPrimaries(c, todo); err != nil {
		q.fail(err)
		<-q.slots
		return
	}
	c.todo = int64(len(todo))
	q.unrecorded.Add(c.todo)
	c.remaining.Store(int32(len(todo)))
	for _, r := range todo {
		q.work <- workItem{c: c, r: r}
	}
}

// readPrimaries notes, with --durable, the id of the Redis primary of each
// queue the rows todo of c go to, before they are queued.
func (q *queuer) readPrimaries(c *chunk, todo []*qrow) error {
	if q.durable == nil {
		return nil
	}
	c.primary = map[string]string{}
	return q.guard.do(q.ctx, func(ctx context.Context) error {
		for _, r := range todo {
			if _, ok := c.primary[r.queue]; ok {
				continue
			}
			id, err := tasks.PrimaryID(ctx, q.rdb, q.prefix, r.queue)
			if err != nil {
				return err
			}
			c.primary[r.queue] = id
		}
		return nil
	})
}

// awaitRoom waits until n more rows keep the batch's open rows (queued and
// not ended: pending, retrying or halted, and those handed out but not
// recorded yet) within --max-pending; a run always has room for one chunk.
// It returns false when the run stops meanwhile: Ctrl-C, a Redis error, or
// a batch cancel.
func (q *queuer) awaitRoom(n int) bool {
	if q.maxPending <= 0 {
		return true
	}
	for {
		// Read before the counters: a chunk recorded in between is then
		// counted twice, never missed.
		unrecorded := q.unrecorded.Load()
		var st batch.Status
		err := q.guard.do(q.ctx, func(ctx context.Context) error {
			var err error
			st, err = q.store.Status(ctx, q.id)
			if errors.Is(err, batch.ErrNotFound) {
				return permanentError{errRecordGone}
			}
			return err
		})
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				q.fail(err)
			}
			return false
		}
		if st.State == batch.StateCancelled {
			q.cancelled.Store(true)
			q.stopFlag.Store(true)
			return false
		}
		open := st.Counts.Pending + st.Counts.Retrying + st.Counts.Halted + unrecorded
		if open == 0 || open+int64(n) <= int64(q.maxPending) {
			return true
		}
		if !q.heldBack {
			q.heldBack = true
			fmt.Fprintf(q.stderr, "enqueue: batch %s: %d rows queued and not ended (--max-pending %d): the rest are queued as workers end rows\n",
				q.id, open, q.maxPending)
		}
		select {
		case <-q.ctx.Done():
			return false
		case <-time.After(pendingPoll):
		}
	}
}

// version returns the version of line, taking its block from the record.
// Blocks are asked for in line order by the one reading goroutine.
func (q *queuer) version(line int) (int64, error) {
	block := line / batch.BlockLines
	if block != q.curBlock {
		n := min(batch.BlockLines, q.lines+1-block*batch.BlockLines)
		var first int64
		err := q.guard.do(q.ctx, func(ctx context.Context) error {
			var err error
			first, err = q.store.Versions(ctx, q.id, block, n)
			if errors.Is(err, batch.ErrNotFound) {
				return permanentError{errRecordGone}
			}
			return err
		})
		if err != nil {
			return 0, err
		}
		q.curBlock, q.blockFirst = block, first
	}
	return q.blockFirst + int64(line-block*batch.BlockLines), nil
}

var errFileChanged = errors.New("the input file changed while it was being queued: what was queued is recorded; run the command again on the finished file (a changed file is a new batch)")

var errRecordGone = errors.New("the batch record disappeared from Redis (was Redis restarted without persistence, or flushed?): nothing more is queued; check Redis, then run the same command again")

func (q *queuer) markInvalid(r *qrow, problems []string) {
	r.outcome = batch.OutcomeInvalid
	r.message = strings.Join(problems, "; ")
	q.invalid.Add(1)
	if !q.skipInvalid {
		q.pmu.Lock()
		q.problems.row(r.line, problems)
		q.pmu.Unlock()
	}
}

// enqueue queues one row; afterwards r.outcome says what happened ("" when
// it was not done).
func (q *queuer) enqueue(r *qrow) {
	if p := deadKeyProblem(r.u, r.deadTask); p != "" {
		q.markInvalid(r, []string{p})
		return
	}
	u := r.u
	u.Meta = &tasks.Meta{Version: r.version, Batch: q.id, Line: r.line, Source: tasks.SourceCLI}
	// A finished row's outcome, code, message and RequestId live in the
	// batch record for the batch window: by default asynq drops the task
	// when it completes instead of keeping it and its result for a day
	// (about 1 KB a row). Dead rows stay in the archive, as every dead job
	// does.
	opts := []asynq.Option{asynq.Queue(r.queue), asynq.Retention(q.keepFinished)}
	keyID := ""
	if key := strings.TrimSpace(u.IdempotencyKey); key != "" {
		keyID = tasks.TaskIDForKey(key) // NewTask sets it as the task id
	} else {
		opts = append(opts, asynq.TaskID(q.info.TaskID(r.line)))
	}
	task, err := tasks.NewTask(u, opts...)
	if err != nil {
		// Valid in the first pass, invalid now: an Expiration that came
		// too close.
		q.markInvalid(r, checkRow(&inRow{line: r.line, u: r.u}, func(u *tasks.Update) error { return err }))
		return
	}
	conflict := false
	if keyID != "" {
		// The key may be queued under its id of before.
		err = q.guard.do(q.ctx, func(context.Context) error {
			id, taken, err := tasks.LegacyKeyTask(q.insp, r.queue, strings.TrimSpace(u.IdempotencyKey))
			if taken {
				keyID, conflict = id, true
			}
			return err
		})
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				q.fail(err)
			}
			return
		}
	}
	err = q.guard.do(q.ctx, func(ctx context.Context) error {
		if conflict {
			return nil
		}
		_, err := q.client.EnqueueContext(ctx, task)
		if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
			conflict = true
			return nil
		}
		return err
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			q.fail(err)
		}
		return
	}
	r.taskID = keyID
	r.outcome = batch.OutcomePending
	switch {
	case !conflict:
		r.fresh = true
		q.queued.Add(1)
	case keyID != "" && !q.ours(r.queue, keyID, r.line):
		r.outcome = batch.OutcomeDuplicate
		r.message = "IdempotencyKey already used: another producer or batch queued a task with this key (see task_id), so this row was not queued again"
		q.already.Add(1)
		return
	default:
		q.already.Add(1)
	}
	q.noteFixed(r)
}

// ours reports whether task id (of a row's IdempotencyKey) in queue is
// this batch's own row line, queued by an earlier run.
func (q *queuer) ours(queue, id string, line int) bool {
	var info *asynq.TaskInfo
	err := q.guard.do(q.ctx, func(context.Context) error {
		var err error
		info, err = q.insp.GetTaskInfo(queue, id)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			return permanentError{err}
		}
		return err
	})
	if err != nil {
		return false
	}
	var p struct {
		Meta *tasks.Meta `json:"_meta"`
	}
	return json.Unmarshal(info.Payload, &p) == nil && p.Meta != nil && p.Meta.Batch == q.id && p.Meta.Line == line
}

// record writes the rows of c that are done to the batch record. If the
// batch was cancelled meanwhile, it removes the jobs this run queued in c
// and stops the run.
func (q *queuer) record(c *chunk) {
	defer func() { <-q.slots }()
	defer q.unrecorded.Add(-c.todo)
	var entries []batch.Entry
	for _, r := range c.rows {
		if r.outcome != "" {
			entries = append(entries, batch.Entry{Line: r.line, Outcome: r.outcome, TaskID: r.taskID, Code: r.code, Message: r.message})
		}
	}
	if len(entries) == 0 {
		return
	}
	var rec batch.Recorded
	// Recording what was queued goes on after Ctrl-C, within the outage
	// bound.
	err := q.guard.do(context.Background(), func(ctx context.Context) error {
		var err error
		rec, err = q.store.Record(ctx, q.id, entries)
		if errors.Is(err, batch.ErrNotFound) {
			return permanentError{errRecordGone}
		}
		return err
	})
	if err != nil {
		q.fail(err)
		return
	}
	q.handled.Add(int64(len(entries)))
	if q.durable != nil && !rec.Cancelled {
		q.confirm(c)
	}
	if rec.Cancelled {
		q.cancelled.Store(true)
		q.stopFlag.Store(true)
		for _, r := range c.rows {
			if r.fresh {
				id := r.taskID
				if id == "" {
					id = q.info.TaskID(r.line)
				}
				_ = q.insp.DeleteTask(r.queue, id)
			}
		}
	}
}

// confirm waits until the replicas hold the fresh rows of c and their
// record (--durable), and counts them as unconfirmed if they did not in
// time.
func (q *queuer) confirm(c *chunk) {
	fresh := map[string]int{}
	for _, r := range c.rows {
		if r.fresh {
			fresh[r.queue]++
		}
	}
	// One try per queue: after a connection error the client may be on a
	// new primary, whose replicas would confirm rows the old one took with
	// it. The shards of a split queue may live on different primaries:
	// they are waited for at once.
	ctx, cancel := context.WithTimeout(context.Background(), q.durable.Timeout+10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for queue, n := range fresh {
		wg.Go(func() {
			if err := tasks.WaitReplicas(ctx, q.rdb, q.prefix, queue, c.primary[queue], *q.durable); err != nil {
				q.unconfirmed.Add(int64(n))
			}
		})
	}
	wg.Wait()
}
