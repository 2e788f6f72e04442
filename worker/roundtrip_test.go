package worker_test

import (
	"context"
	"crypto/sha1"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// roundTrips records the round trips to Redis that touch a binding's keys
// (hash tag {SubsId}) or write an asynq task's result: each one is the
// list of its commands, "name first-key" (for a script, "evalsha <sha>
// first-key").
type roundTrips struct {
	subsID string
	mu     sync.Mutex
	trips  [][]string
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		r.record([]redis.Cmder{cmd})
		return err
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		r.record(cmds)
		return err
	}
}

func (r *roundTrips) record(cmds []redis.Cmder) {
	var trip []string
	mine := false
	for _, c := range cmds {
		if c.Err() != nil && strings.HasPrefix(c.Err().Error(), "NOSCRIPT") {
			continue // go-redis sends the script's text next: not a round trip of the design
		}
		a := c.Args()
		name := strings.ToLower(c.Name())
		s := name
		switch {
		case name == "evalsha" && len(a) > 3:
			s = fmt.Sprintf("evalsha %v %v", a[1], a[3])
		case name == "eval" && len(a) > 3:
			// The script's text, sent when Redis did not know it yet (a
			// fresh server): named by its SHA, as EVALSHA names it.
			s = fmt.Sprintf("evalsha %x %v", sha1.Sum([]byte(fmt.Sprint(a[1]))), a[3])
		case len(a) > 1:
			s = fmt.Sprintf("%s %v", name, a[1])
		}
		if strings.Contains(s, "{"+r.subsID+"}") || (name == "hset" && len(a) > 2 && a[2] == "result") {
			mine = true
		}
		trip = append(trip, s)
	}
	if mine {
		r.mu.Lock()
		r.trips = append(r.trips, trip)
		r.mu.Unlock()
	}
}

func (r *roundTrips) all() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.trips...)
}

// runOneJob runs one fresh versioned job to its end with rt recording, and
// returns the job's result.
func runOneJob(t *testing.T, i int) (worker.Result, [][]string) {
	t.Helper()
	e := newEnv(t, dyplsim.Config{}, nil)
	u := outIDUpdate(i, "round-trips")
	if err := worker.LoadFenceScripts(e.ctx, e.rdb); err != nil {
		t.Fatal(err)
	}
	rt := &roundTrips{subsID: u.SubsId}
	e.rdb.AddHook(rt)
	e.start()
	r := result(t, e.waitState(e.enqueue(u), 10*time.Second, asynq.TaskStateCompleted))
	return r, rt.all()
}

// The fence's commit and the job's asynq result are written in one round
// trip (a pipeline), and the result is the one asynq's ResultWriter would
// have written.
func TestCommitAndResultInOneRoundTrip(t *testing.T) {
	t.Parallel()
	r, trips := runOneJob(t, 12)
	if r.Outcome != worker.OutcomeApplied || r.RequestID == "" || r.Version == 0 || r.Attempts != 1 {
		t.Fatalf("result %+v, want applied on the first attempt with its RequestId and version", r)
	}
	commit := -1
	for i, trip := range trips {
		for _, c := range trip {
			if strings.HasPrefix(c, "evalsha "+worker.FenceCommitSHA) {
				commit = i
			}
		}
	}
	if commit < 0 {
		t.Fatalf("no fence commit among the round trips %q", trips)
	}
	var withResult bool
	for _, c := range trips[commit] {
		withResult = withResult || strings.HasPrefix(c, "hset asynq:{")
	}
	if !withResult {
		t.Errorf("the fence commit went alone (%q): want the result written in the same round trip; all: %q", trips[commit], trips)
	}
	for i, trip := range trips {
		for _, c := range trip {
			if i != commit && strings.HasPrefix(c, "hset asynq:{") {
				t.Errorf("result written again in round trip %d: %q", i, trip)
			}
		}
	}
}

// A fresh job with a version reads its state in the fence's begin: the
// binding's keys see two round trips, the begin and the commit (with the
// result), and no read of the job's state before them.
func TestStateReadWithTheBegin(t *testing.T) {
	t.Parallel()
	r, trips := runOneJob(t, 13)
	if r.Outcome != worker.OutcomeApplied || r.Attempts != 1 {
		t.Fatalf("result %+v, want applied on the first attempt", r)
	}
	if len(trips) != 2 || len(trips[0]) != 1 || !strings.HasPrefix(trips[0][0], "evalsha "+worker.FenceBeginSHA) ||
		!strings.HasPrefix(trips[1][0], "evalsha "+worker.FenceCommitSHA) {
		t.Errorf("round trips on the binding %q, want the begin, then the commit with the result", trips)
	}
}

// A job's state under the layout of workers before requeue generations
// (<state key>:<gen>) is still found, and moved to the present key, when
// the state is read with the fence's begin.
func TestLegacyStateIsFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	u := outIDUpdate(14, "legacy")
	id := "legacy-state-job"
	legacy := tasks.JobStateKey(e.ns, u.SubsId, id) + ":0"
	if err := e.rdb.HSet(e.ctx, legacy, "attempts", 2, "first_failure", time.Now().Add(-time.Minute).UnixMilli(),
		"last_code", "isp.SYSTEM_ERROR").Err(); err != nil {
		t.Fatal(err)
	}
	e.start()
	if _, err := e.prod.Enqueue(e.ctx, u, asynq.TaskID(id)); err != nil {
		t.Fatal(err)
	}
	r := result(t, e.waitState(id, 10*time.Second, asynq.TaskStateCompleted))
	if r.Outcome != worker.OutcomeApplied || r.Attempts != 3 {
		t.Errorf("result %+v, want applied as attempt 3 (2 counted in the legacy state)", r)
	}
}

// batchRowEnv is an env with a CLI batch of three lines begun, and a hook
// counting the reads of the batch's cancel mark.
func batchRowEnv(t *testing.T, mod func(*worker.Config)) (*env, *batch.Store, string, *atomic.Int64) {
	t.Helper()
	e := newEnv(t, dyplsim.Config{}, mod)
	store := &batch.Store{Redis: e.rdb, Prefix: e.ns}
	id := "bcanceqwaitrxyz22"
	if _, _, err := store.Begin(e.ctx, batch.Info{ID: id, File: "f.csv", Format: "csv", Queue: e.queue, Lines: 3, Rows: 2, ValidRows: 2}); err != nil {
		t.Fatal(err)
	}
	reads := &atomic.Int64{}
	e.rdb.AddHook(onCommand(func(cmd redis.Cmder) {
		if a := cmd.Args(); strings.EqualFold(cmd.Name(), "hget") && len(a) > 2 && a[1] == store.Key(id) && a[2] == "state" {
			reads.Add(1)
		}
	}))
	return e, store, id, reads
}

// enqueueRow enqueues u as line 2 of batch id, with a version.
func (e *env) enqueueRow(u tasks.Update, id string) string {
	e.t.Helper()
	u.Meta = &tasks.Meta{Batch: id, Line: 2, Version: 7, Source: tasks.SourceCLI}
	task, err := tasks.NewTask(u, asynq.Queue(e.queue))
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := asynq.NewClientFromRedisClient(e.rdb).Enqueue(task)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.ID
}

// A batch row that goes straight to its call (no halt, no busy binding, no
// rate to wait for) reads its batch's cancel mark once, at pick-up.
func TestBatchRowReadsItsCancelMarkOnce(t *testing.T) {
	t.Parallel()
	e, _, id, reads := batchRowEnv(t, nil)
	e.start()
	r := result(t, e.waitState(e.enqueueRow(outIDUpdate(15, "row"), id), 10*time.Second, asynq.TaskStateCompleted))
	if r.Outcome != worker.OutcomeApplied {
		t.Fatalf("result %+v", r)
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("the cancel mark was read %d times, want once", n)
	}
}

// A cancel issued while a batch row waits for its binding stops it before
// its call.
func TestCancelWhileWaitingForTheBindingStopsTheRow(t *testing.T) {
	t.Parallel()
	e, store, id, reads := batchRowEnv(t, func(c *worker.Config) { c.BusyWait = 5 * time.Second })
	u := outIDUpdate(16, "row")
	// Another attempt holds the binding until the cancel is in: the row
	// waits for it, however slowly it was picked up.
	lock := tasks.LockKey(e.ns, u.SubsId)
	if err := e.rdb.Set(e.ctx, lock, "someone-else", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	e.start()
	tid := e.enqueueRow(u, id)
	eventually(t, 5*time.Second, "the row's pick-up", func() bool { return reads.Load() > 0 })
	if _, err := store.Cancel(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.Del(e.ctx, lock).Err(); err != nil {
		t.Fatal(err)
	}
	r := result(t, e.waitState(tid, 10*time.Second, asynq.TaskStateCompleted))
	if r.Outcome != worker.OutcomeCancelled {
		t.Errorf("result %+v, want cancelled", r)
	}
	if n := e.sim.Stats().Calls["UpdateSubscription"]["OK"]; n != 0 {
		t.Errorf("%d calls after the cancel", n)
	}
}

// onCommand is a go-redis hook calling f with every command sent alone.
type onCommand func(redis.Cmder)

func (f onCommand) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f onCommand) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		f(cmd)
		return next(ctx, cmd)
	}
}
func (f onCommand) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A row applied by a run whose report failed (the batch mark: a Redis
// error) runs again; a cancel of its batch, or its age passing JOB_MAX_AGE,
// in between does not make it cancelled ("ended without an API call") or
// dead: the fence shows its version applied, and it ends applied.
func TestRerunOfAnAppliedRowEndsAppliedAfterACancelOrItsAge(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name  string
		after func(e *env, store *batch.Store, id string, clock *atomic.Int64)
	}{
		{"cancel", func(e *env, store *batch.Store, id string, _ *atomic.Int64) {
			if _, err := store.Cancel(e.ctx, id); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"max age", func(_ *env, _ *batch.Store, _ string, clock *atomic.Int64) {
			clock.Store(int64(48 * time.Hour))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := &atomic.Int64{} // how far the worker's clock is ahead
			e, store, id, _ := batchRowEnv(t, func(c *worker.Config) {
				c.Now = func() time.Time { return time.Now().Add(time.Duration(clock.Load())) }
			})
			fail := &failKeyOnce{name: "evalsha", key: store.Key(id)}
			e.rdb.AddHook(fail)
			e.start()
			tid := e.enqueueRow(outIDUpdate(11+i, "row"), id)
			eventually(t, 10*time.Second, "the failed report of the applied row", fail.done.Load)
			tc.after(e, store, id, clock)
			info := e.waitState(tid, 15*time.Second, asynq.TaskStateCompleted, asynq.TaskStateArchived)
			r := result(t, info)
			if r.Outcome != worker.OutcomeApplied || r.RequestID == "" {
				t.Errorf("result %+v, want applied with the RequestId of its call", r)
			}
			rows, err := store.Rows(e.ctx, id, 2, 2)
			if err != nil {
				t.Fatal(err)
			}
			if rows[0].Outcome != batch.OutcomeApplied {
				t.Errorf("row %+v, want applied", rows[0])
			}
			if n := e.sim.Stats().Calls["UpdateSubscription"]["OK"]; n != 1 {
				t.Errorf("%d applying calls, want 1", n)
			}
			if _, ok, err := e.dlq.Get(e.ctx, tid); err != nil || ok {
				t.Errorf("a dead-letter record stands for applied task %s (err %v)", tid, err)
			}
		})
	}
}
