package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/internal/redistest"
)

// A task archived outside the handler is classified by what asynq tells of
// it: a lease that expired on the last attempt, asynq's own retry limit, a
// payload schema newer than the worker, or else an operator's archive.
func TestSweepClassifies(t *testing.T) {
	sw := &Sweeper{}
	for _, c := range []struct {
		info         asynq.TaskInfo
		code, reason string
	}{
		{asynq.TaskInfo{LastErr: "asynq: task lease expired", Retried: 3, MaxRetry: 3}, CodeLeaseExpired, ReasonLeaseExpired},
		{asynq.TaskInfo{LastErr: "transient: isp.SYSTEM_ERROR: busy", Retried: 1000, MaxRetry: 1000}, CodeRetryLimit, ReasonRetryLimit},
		{asynq.TaskInfo{LastErr: "unsupported schema: unsupported payload schema: _meta.schema is 9", Retried: 25, MaxRetry: 25}, CodeUnsupportedSchema, ReasonUnsupportedSchema},
		{asynq.TaskInfo{LastErr: "unsupported schema: unsupported payload schema", Retried: 2, MaxRetry: 25}, CodeArchived, ReasonOperator},
		{asynq.TaskInfo{LastErr: "asynq: task lease expired", Retried: 1, MaxRetry: 25}, CodeArchived, ReasonOperator},
		{asynq.TaskInfo{LastErr: "", Retried: 0, MaxRetry: 25}, CodeArchived, ReasonOperator},
		{asynq.TaskInfo{LastErr: "transient: isp.SYSTEM_ERROR", Retried: 4, MaxRetry: 25}, CodeArchived, ReasonOperator},
	} {
		c.info.ID = "x"
		r := sw.record(&c.info)
		if r.Code != c.code || r.Reason != c.reason {
			t.Errorf("%q retried %d/%d: code %s reason %q, want %s %q", c.info.LastErr, c.info.Retried, c.info.MaxRetry, r.Code, r.Reason, c.code, c.reason)
		}
	}
}

// newBatch creates a batch of n pending rows whose task ids are the
// default ones, and returns its id.
func newBatch(t *testing.T, bs *batch.Store, n int) string {
	t.Helper()
	ctx := context.Background()
	h := batch.NewHasher("csv")
	fmt.Fprint(h, t.Name(), time.Now().UnixNano())
	id := h.ID()
	if _, _, err := bs.Begin(ctx, batch.Info{ID: id, File: "f.csv", Format: "csv", Queue: "q", Lines: n + 1, Rows: n, ValidRows: n}); err != nil {
		t.Fatal(err)
	}
	var es []batch.Entry
	for l := 2; l <= n+1; l++ {
		es = append(es, batch.Entry{Line: l, Outcome: batch.OutcomePending})
	}
	if _, err := bs.Record(ctx, id, es); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Complete(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

func rowPayload(b string, line int, schema int) string {
	return fmt.Sprintf(`{"SubsId":"1000000768790001","PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":"13812345678","PoolKey":"FC1","_meta":{"schema":%d,"version":%d,"batch":%q,"line":%d,"source":"cli"}}`, schema, 100+line, b, line)
}

// checkCounters fails unless every outcome counter of batch id equals the
// number of rows in that outcome.
func checkCounters(t *testing.T, bs *batch.Store, id string, lines int) batch.Status {
	t.Helper()
	ctx := context.Background()
	st, err := bs.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := bs.Outcomes(ctx, id, 0, lines)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int64{}
	for _, o := range outs {
		if o != "" {
			n[o]++
		}
	}
	for _, o := range batch.Outcomes {
		if st.Of(o) != n[o] {
			t.Errorf("counter %s = %d, rows in that outcome %d (counts %+v)", o, st.Of(o), n[o], st.Counts)
		}
	}
	var byCode int64
	for _, c := range st.Codes {
		if c.Outcome == batch.OutcomeDead {
			byCode += c.Rows
		}
	}
	if byCode != st.Dead {
		t.Errorf("dead rows by code %d, dead rows %d", byCode, st.Dead)
	}
	return st
}

// Every task archived outside the handler ends its batch row dead with its
// true reason, once, however often the sweep runs; a row the handler ended
// is left as it is, and one whose end the handler could not report is ended
// from the record.
func TestSweepEndsBatchRows(t *testing.T) {
	ctx := context.Background()
	s, _, ns := newStore(t)
	c, in, q := newQueue(t, s)
	bs := &batch.Store{Redis: s.Redis, Prefix: ns}
	b := newBatch(t, bs, 5)
	id := func(line int) string { return batch.TaskID(b, line) }

	// Line 2: archived by a click in the UI.
	enqueue(t, c, q, id(2), rowPayload(b, 2, 1))
	if err := in.ArchiveTask(q, id(2)); err != nil {
		t.Fatal(err)
	}
	// Lines 3 and 4: archived by asynq itself when its MaxRetry ran out,
	// one after a transient error, one with a newer payload schema.
	for l, s := range map[int]int{3: 1, 4: 9} {
		if _, err := c.Enqueue(asynq.NewTask(testType, []byte(rowPayload(b, l, s))), asynq.Queue(q), asynq.TaskID(id(l)), asynq.MaxRetry(0)); err != nil {
			t.Fatal(err)
		}
	}
	srv := asynq.NewServerFromRedisClient(s.Redis, asynq.Config{Queues: map[string]int{q: 1}, Concurrency: 2,
		LogLevel: asynq.FatalLevel, TaskCheckInterval: 20 * time.Millisecond})
	err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		if strings.Contains(string(task.Payload()), `"schema":9`) {
			return errors.New("unsupported schema: unsupported payload schema")
		}
		return errors.New("transient: isp.SYSTEM_ERROR: busy")
	}))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for state(t, in, q, id(3)) != "archived" || state(t, in, q, id(4)) != "archived" {
		if time.Now().After(deadline) {
			t.Fatal("asynq did not archive the failing tasks")
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Shutdown()
	// Line 5: the handler wrote the record and ended the row.
	deadJob(t, s, c, in, q, id(5), rowPayload(b, 5, 1))
	if err := bs.Mark(ctx, b, 5, batch.RowState{Outcome: batch.OutcomeDead, Code: "isv.BIND_CONFLICT"}); err != nil {
		t.Fatal(err)
	}
	// Line 6: the handler wrote the record, but its report to the batch
	// was lost: the row still says retrying.
	deadJob(t, s, c, in, q, id(6), rowPayload(b, 6, 1))
	if err := bs.Mark(ctx, b, 6, batch.RowState{Outcome: batch.OutcomeRetrying, Code: "isp.SYSTEM_ERROR"}); err != nil {
		t.Fatal(err)
	}

	sw := &Sweeper{Store: s, Inspector: in, Queues: []string{q}, Batches: bs}
	for range 2 {
		if _, err := sw.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int][2]string{
		2: {CodeArchived, ReasonOperator},
		3: {CodeRetryLimit, ReasonRetryLimit},
		4: {CodeUnsupportedSchema, ReasonUnsupportedSchema},
		5: {"isv.BIND_CONFLICT", ReasonPermanent},
		6: {"isv.BIND_CONFLICT", ReasonPermanent},
	}
	rows, err := bs.Rows(ctx, b, 2, 6)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		w := want[row.Line]
		if row.Outcome != batch.OutcomeDead || row.Code != w[0] {
			t.Errorf("line %d: row %s %s, want dead %s", row.Line, row.Outcome, row.Code, w[0])
		}
		r, ok, err := s.Get(ctx, id(row.Line))
		if err != nil || !ok || r.Code != w[0] || r.Reason != w[1] {
			t.Errorf("line %d: record %+v (%v %v), want %s %q", row.Line, r, ok, err, w[0], w[1])
		}
	}
	st := checkCounters(t, bs, b, 7)
	if !st.Done() || st.Dead != 5 {
		t.Errorf("batch not done: %+v", st.Counts)
	}
}

// Sweeps racing each other and the handler's reports keep the batch
// counters equal to the row states.
func TestSweepRacesKeepCounters(t *testing.T) {
	ctx := context.Background()
	s, _, ns := newStore(t)
	c, in, q := newQueue(t, s)
	bs := &batch.Store{Redis: s.Redis, Prefix: ns}
	const n = 60
	b := newBatch(t, bs, n)
	for l := 2; l <= n+1; l++ {
		enqueue(t, c, q, batch.TaskID(b, l), rowPayload(b, l, 1))
	}
	if _, err := in.ArchiveAllPendingTasks(q); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			sw := &Sweeper{Store: s, Inspector: in, Queues: []string{q}, Batches: bs}
			if _, err := sw.Sweep(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		for l := 2; l <= n+1; l += 2 {
			if err := bs.Mark(ctx, b, l, batch.RowState{Outcome: batch.OutcomeDead, Code: "isv.BIND_CONFLICT"}); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	st := checkCounters(t, bs, b, n+2)
	if st.Dead != n || !st.Done() {
		t.Errorf("counts %+v", st.Counts)
	}
	if cnt, _ := s.Count(ctx); cnt != n {
		t.Errorf("%d records, want %d", cnt, n)
	}
}

// afterHook runs fn once, right after the first command whose arguments
// include a key ending in suffix has been answered.
type afterHook struct {
	suffix string
	once   sync.Once
	fn     func()
}

func (h *afterHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *afterHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(cmd)
		return err
	}
}
func (h *afterHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			h.check(c)
		}
		return err
	}
}
func (h *afterHook) check(cmd redis.Cmder) {
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok && strings.HasSuffix(s, h.suffix) {
			h.once.Do(h.fn)
			return
		}
	}
}

// A sweep that read the archive before a purge or a requeue does not bring
// back the records they removed.
func TestSweepDoesNotRecreateRemovedRecords(t *testing.T) {
	for _, op := range []string{"purge", "requeue"} {
		t.Run(op, func(t *testing.T) {
			ctx := context.Background()
			s, _, ns := newStore(t)
			c, in, q := newQueue(t, s)
			bs := &batch.Store{Redis: s.Redis, Prefix: ns}
			b := newBatch(t, bs, 1)
			tid := batch.TaskID(b, 2)
			deadJob(t, s, c, in, q, tid, rowPayload(b, 2, 1))
			if err := bs.Mark(ctx, b, 2, batch.RowState{Outcome: batch.OutcomeDead, Code: "isv.BIND_CONFLICT"}); err != nil {
				t.Fatal(err)
			}
			rq := &Requeuer{Store: s, Inspector: in, Client: c}
			hooked := redistest.Client(t)
			hooked.AddHook(&afterHook{suffix: ":archived", fn: func() {
				var err error
				if op == "purge" {
					_, err = rq.Purge(ctx, Filter{}, false)
				} else {
					_, err = rq.Requeue(ctx, Filter{}, false)
				}
				if err != nil {
					t.Error(err)
				}
			}})
			sw := &Sweeper{Store: s, Inspector: asynq.NewInspectorFromRedisClient(hooked), Queues: []string{q}, Batches: bs}
			if _, err := sw.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			wantState := map[string]string{"purge": "gone", "requeue": "pending"}[op]
			if st := state(t, in, q, tid); st != wantState {
				t.Fatalf("task is %s after %s, want %s", st, op, wantState)
			}
			if hasRecord(t, s, tid) {
				t.Errorf("the sweep brought back the record the %s removed", op)
			}
			if n, _ := s.Count(ctx); n != 0 {
				t.Errorf("%d records indexed after %s", n, op)
			}
			checkCounters(t, bs, b, 3)
		})
	}
}

// A purge deletes a record only as it read it: a job that died again
// meanwhile keeps its new record.
func TestPurgeKeepsRecordWrittenMeanwhile(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	c, in, q := newQueue(t, s)
	deadJob(t, s, c, in, q, "x", payload)
	hooked := redistest.Client(t)
	hooked.AddHook(&afterHook{suffix: ":t:x", fn: func() {
		// The job, run again from the UI, died again.
		r := Record{TaskID: "x", Queue: q, Type: testType, Code: "isv.SUBS_NOT_EXIST", Reason: ReasonPermanent, Attempts: 2, DiedAt: t0.Add(time.Hour)}
		r.SetPayload([]byte(payload))
		if err := s.Put(ctx, r); err != nil {
			t.Error(err)
		}
	}})
	rq := &Requeuer{Store: s, Inspector: asynq.NewInspectorFromRedisClient(hooked), Client: c}
	if _, err := rq.Purge(ctx, Filter{}, false); err != nil {
		t.Fatal(err)
	}
	r, ok, err := s.Get(ctx, "x")
	if err != nil || !ok || r.Code != "isv.SUBS_NOT_EXIST" {
		t.Fatalf("the new record was purged: %+v %v %v", r, ok, err)
	}
	if n, _ := s.Count(ctx); n != 1 {
		t.Errorf("%d records indexed, want 1", n)
	}
}

// failScriptOnce fails the first run of one script (by its SHA) with a
// connection error, after Redis ran it or not (lost says which).
type failScriptOnce struct {
	sha  string
	lost bool
	done atomic.Bool
}

func (h *failScriptOnce) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *failScriptOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		a := cmd.Args()
		if len(a) > 1 && a[1] == h.sha && h.done.CompareAndSwap(false, true) {
			if h.lost {
				_ = next(ctx, cmd)
			}
			cmd.SetErr(errInjected)
			return errInjected
		}
		return next(ctx, cmd)
	}
}
func (h *failScriptOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// sweepWhileRunAgain archives task "x" without a record (it died; its
// record was never written) and sweeps it through a client that fails as
// fail says, while the task leaves the archive (run again from the UI)
// between the sweep's lookup and its write. It checks that the failure
// left the record standing and returns the sweeper, for the next sweep.
func sweepWhileRunAgain(t *testing.T, fail *failScriptOnce) (*Store, *asynq.Client, *asynq.Inspector, string, *Sweeper) {
	t.Helper()
	s, _, ns := newStore(t)
	c, in, q := newQueue(t, s)
	enqueue(t, c, q, "x", payload)
	if err := in.ArchiveTask(q, "x"); err != nil {
		t.Fatal(err)
	}
	hooked := redistest.Client(t)
	hooked.AddHook(&afterHook{suffix: ":rec:x", fn: func() {
		if err := in.RunTask(q, "x"); err != nil {
			t.Error(err)
		}
	}})
	hooked.AddHook(fail)
	sw := &Sweeper{Store: &Store{Redis: hooked, Prefix: ns}, Inspector: in, Queues: []string{q}}
	if _, err := sw.Sweep(context.Background()); !errors.Is(err, errInjected) {
		t.Fatalf("first sweep: %v, want the injected failure", err)
	}
	if !fail.done.Load() || !hasRecord(t, s, "x") {
		t.Fatal("the test did not make its case: the record should stand after the failure")
	}
	return s, c, in, q, sw
}

// A record the sweep wrote for a task that left the archive meanwhile (run
// again from the UI) must go, even when the sweep's write or its taking back
// fails, or the worker stops before it: nothing else looks at records of
// tasks that are not archived, so the next sweep, of any worker, deletes it.
func TestSweepTakesBackItsRecordWhenTheDeleteFailed(t *testing.T) {
	for _, c := range []struct {
		name    string
		sha     string
		lost    bool
		restart bool
	}{
		{"taking back fails", settleScript.Hash(), false, false},
		{"taking back fails, then the worker restarts", settleScript.Hash(), false, true},
		{"the write's reply is lost", adoptScript.Hash(), true, false},
		{"the write's reply is lost, then the worker restarts", adoptScript.Hash(), true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			s, _, in, q, sw := sweepWhileRunAgain(t, &failScriptOnce{sha: c.sha, lost: c.lost})
			if c.restart {
				sw = &Sweeper{Store: s, Inspector: in, Queues: []string{q}}
			}
			if _, err := sw.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			if st := state(t, in, q, "x"); st != "pending" {
				t.Fatalf("task is %s, want pending", st)
			}
			if hasRecord(t, s, "x") {
				t.Error("the record the sweep wrote stands for a task that is not dead")
			}
			if n, _ := s.Count(ctx); n != 0 {
				t.Errorf("%d records indexed", n)
			}
			if m, _ := s.adoptions(ctx); len(m) != 0 {
				t.Errorf("adoptions left: %v", m)
			}
		})
	}
}

// An adoption left for the next sweep keeps the record when the task is
// archived again by then (it died again), and a sweep that finds the task
// still archived settles the adoption.
func TestSweepKeepsTheRecordOfATaskArchivedAgain(t *testing.T) {
	ctx := context.Background()
	s, c, in, q, sw := sweepWhileRunAgain(t, &failScriptOnce{sha: settleScript.Hash()})
	if err := in.ArchiveTask(q, "x"); err != nil { // it died again
		t.Fatal(err)
	}
	if _, err := sw.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasRecord(t, s, "x") {
		t.Error("the archived task lost its record")
	}
	if n, _ := s.Count(ctx); n != 1 {
		t.Errorf("%d records indexed, want 1", n)
	}
	if m, _ := s.adoptions(ctx); len(m) != 0 {
		t.Errorf("adoptions left: %v", m)
	}
	// A plain adoption of a task that stays archived is settled at once.
	enqueue(t, c, q, "y", payload)
	if err := in.ArchiveTask(q, "y"); err != nil {
		t.Fatal(err)
	}
	if n, err := sw.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep wrote %d (err %v), want 1", n, err)
	}
	if m, _ := s.adoptions(ctx); len(m) != 0 {
		t.Errorf("adoptions left: %v", m)
	}
}

// The sweep walks the records, a page a sweep, and deletes the record of a
// job that ran again from the UI's archive and completed; the records of
// archived, live and vanished tasks stay.
func TestSweepDropsTheRecordOfATaskThatRanAgain(t *testing.T) {
	ctx := context.Background()
	s, rdb, _ := newStore(t)
	c, in, q := newQueue(t, s)
	// More records than a sweep checks, of tasks that are gone, all before
	// the one that ran again.
	for i := range checkPageMin + 20 {
		putRecord(t, s, q, fmt.Sprintf("gone%03d", i), payload)
	}
	for _, id := range []string{"zarchived", "zpending", "zran"} {
		if _, err := c.Enqueue(asynq.NewTask(testType, []byte(payload)), asynq.Queue(q), asynq.TaskID(id), asynq.Retention(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := in.ArchiveTask(q, id); err != nil {
			t.Fatal(err)
		}
		putRecord(t, s, q, id, payload)
	}
	runAgain(t, s, in, q, "zran", 5)
	if err := in.RunTask(q, "zpending"); err != nil {
		t.Fatal(err)
	}
	sw := &Sweeper{Store: s, Inspector: in, Queues: []string{q}}
	if _, err := sw.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasRecord(t, s, "zran") {
		t.Fatal("the first sweep reached past its page: the test does not show the walk")
	}
	// Another worker's sweep goes on where this one stopped.
	other := &Sweeper{Store: s, Inspector: in, Queues: []string{q}}
	if _, err := other.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if hasRecord(t, s, "zran") {
		t.Error("the record of a job that ran again and completed still stands")
	}
	for _, id := range []string{"zarchived", "zpending", "gone000", fmt.Sprintf("gone%03d", checkPageMin+19)} {
		if !hasRecord(t, s, id) {
			t.Errorf("record %s was deleted", id)
		}
	}
	if n, _ := s.Count(ctx); n != int64(checkPageMin+20+2) {
		t.Errorf("%d records indexed, want %d", n, checkPageMin+22)
	}
	// Past the end, the walk starts again from the first record.
	if _, err := sw.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if at, _ := rdb.Get(ctx, s.CheckKey()).Int(); at != checkPageMin {
		t.Errorf("the walk did not wrap round: next at %d, want %d", at, checkPageMin)
	}
}

// A task archived after its job ended is no dead letter: in the web UI an
// operator archived a task shown waiting that completed before the click
// (asynq's ArchiveTask archives a completed task too). The sweep writes no
// record for it, deletes the job's record it had from an earlier death,
// and ends its row as the job's result says; a task whose result is older
// than its last failure, or that never ended, is dead as before.
func TestSweepLeavesATaskArchivedAfterItsJobEnded(t *testing.T) {
	ctx := context.Background()
	s, _, ns := newStore(t)
	c, in, q := newQueue(t, s)
	bs := &batch.Store{Redis: s.Redis, Prefix: ns}
	b := newBatch(t, bs, 4)
	id := func(line int) string { return batch.TaskID(b, line) }
	now := time.Now().UTC()
	// What each task's run does: its result, and whether it fails first.
	results := map[string]string{
		id(2): fmt.Sprintf(`{"outcome":"superseded","code":"Superseded","version":102,"note":"version 200 was already applied","at":%q}`, now.Format(time.RFC3339Nano)),
		id(3): fmt.Sprintf(`{"outcome":"applied","code":"OK","RequestId":"RID-3","version":103,"at":%q}`, now.Format(time.RFC3339Nano)),
		id(4): fmt.Sprintf(`{"outcome":"applied","code":"OK","RequestId":"RID-4","version":104,"at":%q}`, now.Add(time.Second).Format(time.RFC3339Nano)),
		// Ended an hour before its last failure: not this run's end.
		id(5): fmt.Sprintf(`{"outcome":"applied","code":"OK","RequestId":"RID-5","version":105,"at":%q}`, now.Add(-time.Hour).Format(time.RFC3339Nano)),
	}
	for l := 2; l <= 5; l++ {
		if _, err := c.Enqueue(asynq.NewTask(testType, []byte(rowPayload(b, l, 1))), asynq.Queue(q), asynq.TaskID(id(l)), asynq.Retention(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	var failed sync.Map
	srv := asynq.NewServerFromRedisClient(s.Redis, asynq.Config{Queues: map[string]int{q: 1}, Concurrency: 4,
		LogLevel: asynq.FatalLevel, TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: 20 * time.Millisecond,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond }})
	err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		tid, _ := asynq.GetTaskID(ctx)
		if tid == id(5) {
			if _, again := failed.LoadOrStore(tid, true); !again {
				return errors.New("transient: isp.SYSTEM_ERROR")
			}
		}
		_, err := task.ResultWriter().Write([]byte(results[tid]))
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
	for l := 2; l <= 5; l++ {
		for deadline := time.Now().Add(10 * time.Second); state(t, in, q, id(l)) != "completed"; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("line %d did not complete", l)
			}
		}
		// The operator's click, which asynq carries out on the completed
		// task.
		if err := in.ArchiveTask(q, id(l)); err != nil {
			t.Fatal(err)
		}
	}
	srv.Shutdown()
	// Line 2's job reported its end; line 3's report to the batch was
	// lost; line 4's job had died once before it ran again and ended, and
	// its record stands.
	if err := bs.Mark(ctx, b, 2, batch.RowState{Outcome: batch.OutcomeSuperseded, Code: "Superseded"}); err != nil {
		t.Fatal(err)
	}
	putRecord(t, s, q, id(4), rowPayload(b, 4, 1))

	sw := &Sweeper{Store: s, Inspector: in, Queues: []string{q}, Batches: bs}
	for range 2 {
		if _, err := sw.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int][2]string{2: {batch.OutcomeSuperseded, ""}, 3: {batch.OutcomeApplied, "RID-3"}, 4: {batch.OutcomeApplied, "RID-4"}, 5: {batch.OutcomeDead, ""}}
	rows, err := bs.Rows(ctx, b, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		w := want[row.Line]
		if row.Outcome != w[0] || row.RequestID != w[1] {
			t.Errorf("line %d: row %s %q, want %s %q", row.Line, row.Outcome, row.RequestID, w[0], w[1])
		}
		if dead := row.Line == 5; hasRecord(t, s, id(row.Line)) != dead {
			t.Errorf("line %d: a record stands %v, want %v", row.Line, !dead, dead)
		}
	}
	checkCounters(t, bs, b, 6)
}
