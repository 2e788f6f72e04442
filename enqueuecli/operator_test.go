package enqueuecli

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// runRaw runs the command in-process with args as they are.
func (h *harness) runRaw(args ...string) result {
	h.t.Helper()
	var out, errb safebuf.Buffer
	code := Run(context.Background(), args, h.getenv, strings.NewReader(""), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// TestQueueTyposRefused: a queue name nothing was ever queued to and no
// worker serves is refused, with the name it most likely meant, unless
// --new-queue says it is meant; queue pause and resume likewise.
func TestQueueTyposRefused(t *testing.T) {
	h := newHarness(t)
	p := h.write("a.csv", csvRows(3))
	r := h.runCtx(context.Background(), "", "--queue", "dyplsq-lvie", p)
	if r.code != exitUsage {
		t.Fatalf("typo accepted: %s", r)
	}
	mustContain(t, r, "stderr", `--queue: queue "dyplsq-lvie" is not in use`, `did you mean "dyplsq-live"?`, "--new-queue")
	if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("more than one line:\n%s", r.stderr)
	}
	if n, _ := h.insp.Queues(); containsStr(n, "dyplsq-lvie") {
		t.Error("the typo's queue was created")
	}
	if list, _ := h.store.List(context.Background(), 0); len(list) != 0 {
		t.Errorf("a batch was made: %+v", list)
	}

	// Meant: --new-queue creates it; then it is in use.
	q := h.ns + "-new"
	defer h.insp.DeleteQueue(q, true)
	if r := h.runCtx(context.Background(), "", "--queue", q, p); r.code != exitUsage {
		t.Fatalf("unknown queue accepted: %s", r)
	}
	if r := h.runCtx(context.Background(), "", "--queue", q, "--new-queue", p); r.code != 0 {
		t.Fatalf("--new-queue: %s", r)
	}

	r = h.run("queue", "pause", "nosuchqueue")
	if r.code != exitUsage {
		t.Fatalf("pause of no queue: %s", r)
	}
	mustContain(t, r, "stderr", `queue "nosuchqueue" is not in use`, "--new-queue")
	r = h.run("queue", "pause", "dyplsq-bluk")
	mustContain(t, r, "stderr", `did you mean "dyplsq-bulk"?`)
	r = h.run("queue", "status", "nosuchqueue")
	if r.code != exitUsage {
		t.Fatalf("status of no queue: %s", r)
	}
	mustContain(t, r, "stderr", `queue "nosuchqueue" is not in use`)
	r = h.run("queue", "pause", q)
	if r.code != 0 {
		t.Fatalf("pause of a queue in use: %s", r)
	}
	h.run("queue", "resume", q)
	fresh := h.ns + "-fresh"
	defer h.insp.DeleteQueue(fresh, true)
	defer h.rdb.Del(context.Background(), "asynq:{"+fresh+"}:paused")
	if r := h.run("queue", "pause", "--new-queue", fresh); r.code != 0 {
		t.Fatalf("pause --new-queue: %s", r)
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestBatchIDIgnoresFlags: the batch id depends on the rows only. An
// interrupted run to one queue, re-run without --queue, resumes into that
// queue and queues no row twice; re-run with another --queue, it refuses.
func TestBatchIDIgnoresFlags(t *testing.T) {
	h := newHarness(t)
	p := h.write("a.csv", csvRows(1200))
	r := h.run(p)
	id := batchID(t, r)
	// Interrupt it: forget the rows after line 600, as a Ctrl-C would
	// have left them, and drop their tasks.
	ctx := context.Background()
	if err := h.rdb.HSet(ctx, h.store.Key(id), "state", batch.StateQueueing).Err(); err != nil {
		t.Fatal(err)
	}
	b, _ := h.rdb.GetRange(ctx, h.store.RowsKey(id), 0, 300).Bytes()
	if err := h.rdb.Set(ctx, h.store.RowsKey(id), b, 0).Err(); err != nil {
		t.Fatal(err)
	}
	h.rdb.PExpireAt(ctx, h.store.RowsKey(id), mustStatus(t, h, id).Expires)
	for line := 602; line <= 1201; line++ {
		_ = h.insp.DeleteTask(h.queue, batch.TaskID(id, line))
	}
	h.rdb.HSet(ctx, h.store.Key(id), "n:pending", 600, "n:queued", 600)

	r = h.runCtx(ctx, "", "--queue", "dyplsq-live", p)
	if r.code != exitUsage || batchID(t, r) != id {
		t.Fatalf("another queue: %s", r)
	}
	mustContain(t, r, "stderr", "queued to "+h.queue, "nothing is queued to dyplsq-live", "Run without --queue")

	r = h.runRaw(p) // no --queue: the default would be dyplsq-bulk
	if r.code != 0 || batchID(t, r) != id {
		t.Fatalf("re-run without --queue: %s", r)
	}
	mustContain(t, r, "stderr", "resuming batch "+id+" (queue "+h.queue+")")
	if c := counts(t, r); c[2] != 600 || c[3] != 600 {
		t.Errorf("summary %v, want 600 queued and 600 already", c)
	}
	if n := h.pending(); n != 1200 {
		t.Errorf("%d tasks in %s, want 1200", n, h.queue)
	}
	if info, err := h.insp.GetQueueInfo(tasks.DefaultBulkQueue); err == nil && info.Pending > 0 {
		for line := 2; line <= 1201; line++ {
			if _, err := h.insp.GetTaskInfo(tasks.DefaultBulkQueue, batch.TaskID(id, line)); err == nil {
				t.Fatalf("line %d went to %s too", line, tasks.DefaultBulkQueue)
			}
		}
	}
}

// TestBatchOfAnEarlierVersionIsFound: a batch made before the id stopped
// hashing the queue is found under its old id, and not queued twice.
func TestBatchOfAnEarlierVersionIsFound(t *testing.T) {
	h := newHarness(t)
	content := csvRows(5)
	p := h.write("a.csv", content)
	old := batch.NewQueueHasher("csv", h.queue)
	old.Write([]byte(content))
	oid := old.ID()
	ctx := context.Background()
	if _, _, err := h.store.Begin(ctx, batch.Info{ID: oid, File: "a.csv", Format: "csv", Queue: h.queue, Lines: 6, Rows: 5, ValidRows: 5}); err != nil {
		t.Fatal(err)
	}
	var es []batch.Entry
	for l := 2; l <= 6; l++ {
		es = append(es, batch.Entry{Line: l, Outcome: batch.OutcomePending})
	}
	if _, err := h.store.Record(ctx, oid, es); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Complete(ctx, oid); err != nil {
		t.Fatal(err)
	}
	r := h.run(p)
	if r.code != 0 || batchID(t, r) != oid || counts(t, r) != [5]int{5, 5, 0, 5, 0} {
		t.Fatalf("%s", r)
	}
	if n := h.pending(); n != 0 {
		t.Errorf("%d tasks queued", n)
	}
}

// TestBatchOfAnEarlierVersionOnTheLiveQueueIsFound: a file queued by an
// earlier version to the live queue (whose batch id hashed that queue) is
// found when run again with another queue: refused with the batch named,
// not queued a second time.
func TestBatchOfAnEarlierVersionOnTheLiveQueueIsFound(t *testing.T) {
	h := newHarness(t)
	content := csvRows(5)
	p := h.write("a.csv", content)
	old := batch.NewQueueHasher("csv", tasks.DefaultLiveQueue)
	old.Write([]byte(content))
	oid := old.ID()
	ctx := context.Background()
	if _, _, err := h.store.Begin(ctx, batch.Info{ID: oid, File: "a.csv", Format: "csv", Queue: tasks.DefaultLiveQueue, Lines: 6, Rows: 5, ValidRows: 5}); err != nil {
		t.Fatal(err)
	}
	r := h.run(p)
	if r.code != exitUsage {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "is batch "+oid+", queued to "+tasks.DefaultLiveQueue)
	if n := h.pending(); n != 0 {
		t.Errorf("%d tasks queued", n)
	}
}

func mustStatus(t *testing.T, h *harness, id string) batch.Status {
	t.Helper()
	st, err := h.store.Status(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSmallOutputFixes: a dry run shows no rate; a file of invalid rows
// only gets no advice to queue "the 0 valid rows"; flag errors point to
// --help.
func TestSmallOutputFixes(t *testing.T) {
	h := newHarness(t)
	r := h.run("--dry-run", h.write("ok.csv", csvRows(5)))
	if r.code != 0 || strings.Contains(r.stdout, "rows/s") {
		t.Errorf("dry run: %s", r)
	}
	bad := h.write("bad.csv", "PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA\nFC1,1000000000000001,17000000000,updateNoA,12\nFC1,1000000000000002,17000000001,updateNoA,13\n")
	r = h.run(bad)
	if r.code != exitFailed || strings.Contains(r.stderr, "--skip-invalid") || strings.Contains(r.stderr, "0 valid rows") {
		t.Errorf("all invalid: %s", r)
	}
	mustContain(t, r, "stderr", "all 2 rows are invalid, so nothing was queued")
	for _, args := range [][]string{{"--bogus", bad}, {"batch", "status", "--bogus"}, {"dlq", "list", "--limit", "x"}, {"queue", "status", "--bogus"}} {
		r := h.run(args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--help)") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%q: %s", args, r)
		}
	}
}

var cancelledRE = regexp.MustCompile(`cancelled in ([0-9.]+[a-zµ]+): .*\nrows: applied (\d+), superseded (\d+), dead (\d+), cancelled (\d+) \(no call after the cancel\)`)

// TestBatchCancelIsInstantAndAirtight: batch cancel while a worker runs the
// batch against the simulator. After the command returns, the API sees no
// call for the batch, and the counts it printed are the batch's final ones.
func TestBatchCancelIsInstantAndAirtight(t *testing.T) {
	h := newHarness(t)
	const n = 3000
	sim, srv, addr, err := dyplsim.Start(dyplsim.Config{Seed: n, RandSeed: 1, Latency: 20 * time.Millisecond}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close(); srv.Close() })
	api, err := dypls.New(dypls.Config{Endpoint: "http://" + addr, AccessKeyID: dyplsim.DefaultAccessKeyID,
		AccessKeySecret: dyplsim.DefaultAccessKeySecret, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	r := h.run(h.write("big.csv", csvRows(n)))
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	id := batchID(t, r)
	startWorker(t, h, api, h.queue)
	deadline := time.Now().Add(30 * time.Second)
	for mustStatus(t, h, id).Applied < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("the worker applied too little: %+v", mustStatus(t, h, id).Counts)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := h.run("batch", "cancel", id)
	calls := updateCalls(sim) // the worker's credential check is a query, not counted
	if c.code != 0 {
		t.Fatalf("cancel: %s", c)
	}
	m := cancelledRE.FindStringSubmatch(c.stdout)
	if m == nil {
		t.Fatalf("cancel output:\n%s", c)
	}
	t.Logf("cancel of a %d-row batch while a worker ran it: %s", n, m[1])
	var applied, superseded, dead, cancelled int64
	fmt.Sscan(m[2], &applied)
	fmt.Sscan(m[3], &superseded)
	fmt.Sscan(m[4], &dead)
	fmt.Sscan(m[5], &cancelled)
	if applied+superseded+dead+cancelled != n || applied >= n-100 || int(applied) != calls {
		t.Fatalf("printed applied %d superseded %d dead %d cancelled %d; %d calls:\n%s", applied, superseded, dead, cancelled, calls, c)
	}
	time.Sleep(time.Second) // the worker goes on taking what is left of the batch
	if got := updateCalls(sim); got != calls {
		t.Errorf("%d calls after the cancel returned", got-calls)
	}
	st := mustStatus(t, h, id)
	if st.Applied != applied || st.Superseded != superseded || st.Dead != dead || st.Cancelled != cancelled || !st.Done() {
		t.Errorf("printed applied %d dead %d cancelled %d; the record has %+v", applied, dead, cancelled, st.Counts)
	}
	if p := h.pending(); p != 0 {
		t.Errorf("%d jobs of the cancelled batch left in the queue", p)
	}
}

// TestBatchCancelSettlesRowsInDoubt: rows retrying at the cancel were
// called before, so the record must not say they were never applied. A row
// whose calls applied it behind 504 answers ends applied (the worker reads
// the binding); a row throttled throughout ends cancelled; the printed
// counts are final and no call follows the cancel.
func TestBatchCancelSettlesRowsInDoubt(t *testing.T) {
	h := newHarness(t)
	sim, api := startSim(t, 3)
	doubt, throttled := dyplsim.SeedBinding(1), dyplsim.SeedBinding(2)
	sim.SetFaults([]dyplsim.FaultRule{
		{Action: "UpdateSubscription", SubsId: doubt.SubsId, Kind: dyplsim.FaultHTTP, Status: 504, Apply: true},
		{Action: "UpdateSubscription", SubsId: throttled.SubsId, Code: "isv.FLOW_LIMIT"},
	})
	r := h.run(h.write("doubt.csv", csvRows(3)))
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	id := batchID(t, r)
	startWorkerWith(t, h, api, func(c *worker.Config) {
		c.MaxAttempts, c.BackoffBase, c.BackoffMax = 50, 300*time.Millisecond, 500*time.Millisecond
	}, h.queue)
	deadline := time.Now().Add(20 * time.Second)
	for st := mustStatus(t, h, id); st.Retrying != 2 || st.Applied != 1; st = mustStatus(t, h, id) {
		if time.Now().After(deadline) {
			t.Fatalf("rows not retrying: %+v", st.Counts)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := h.run("batch", "cancel", id)
	calls := updateCalls(sim)
	if c.code != 0 {
		t.Fatalf("cancel: %s", c)
	}
	mustContain(t, c, "stdout", "rows: applied 2, superseded 0, dead 0, cancelled 1 (no call after the cancel)")
	rows, err := h.store.Rows(context.Background(), id, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].Outcome != batch.OutcomeApplied || rows[1].Outcome != batch.OutcomeCancelled {
		t.Errorf("rows after the cancel: %+v", rows)
	}
	if b, _ := sim.Binding(doubt.SubsId); b.PhoneNoA != "13700000000" {
		t.Errorf("binding in doubt holds %s; the test meant it applied", mask.Text(b.PhoneNoA))
	}
	time.Sleep(time.Second)
	if got := updateCalls(sim); got != calls {
		t.Errorf("%d calls after the cancel returned", got-calls)
	}
}

// TestBatchCancelStopsRowsWaitingForTheRate: rows a worker holds while
// they wait for the shared rate limit are past their pick-up check; the
// cancel still stops them before their call.
func TestBatchCancelStopsRowsWaitingForTheRate(t *testing.T) {
	h := newHarness(t)
	sim, api := startSim(t, 40)
	r := h.run(h.write("slow.csv", csvRows(40)))
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	id := batchID(t, r)
	startWorkerWith(t, h, api, func(c *worker.Config) {
		c.QPS, c.LimitWait = 2, 5*time.Second
	}, h.queue)
	deadline := time.Now().Add(20 * time.Second)
	for mustStatus(t, h, id).Applied < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing applied: %+v", mustStatus(t, h, id).Counts)
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := updateCalls(sim)
	c := h.run("batch", "cancel", id)
	if c.code != 0 {
		t.Fatalf("cancel: %s", c)
	}
	// At most the one call in flight at the cancel (2 a second) may go.
	if n := updateCalls(sim) - before; n > 1 {
		t.Errorf("%d calls after the cancel began, by rows waiting for the rate", n)
	}
	st := mustStatus(t, h, id)
	if st.Cancelled < 30 || st.Applied+st.Cancelled != 40 {
		t.Errorf("counts %+v", st.Counts)
	}
}

// TestRequeueKeepsRowsOfACancelledBatch: a dead row of a cancelled batch
// is not requeued (a worker would end it without a call and its record
// would be lost); the record stays and the output says how to run it.
func TestRequeueKeepsRowsOfACancelledBatch(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	r := h.run(h.write("c.csv", csvRows(2)))
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	id := batchID(t, r)
	if c := h.run("batch", "cancel", id); c.code != 0 {
		t.Fatalf("cancel: %s", c)
	}
	ds := &deadletter.Store{Redis: h.rdb, Prefix: h.ns}
	u := tasks.Update{PoolKey: "FC1", SubsId: "1000000000000001", PhoneNoX: "17000000000", OperateType: "updateNoA", PhoneNoA: "13800000001",
		Meta: &tasks.Meta{Version: 1, Batch: id, Line: 2}}
	payload, _ := json.Marshal(u)
	rec := deadletter.Record{TaskID: h.ns + "-dead", Queue: h.queue, Type: tasks.TypeUpdateSubscription,
		Code: "isv.NO_NOT_EXIST", Message: "no such binding", DiedAt: time.Now()}
	rec.SetPayload(payload)
	if err := ds.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	q := h.run("dlq", "requeue", "--batch", id)
	mustContain(t, q, "stdout", "batch cancelled 1", "rows of a cancelled batch: they were kept, not requeued")
	if n, err := ds.Count(ctx); err != nil || n != 1 {
		t.Errorf("%d records after the requeue (%v), want the 1 kept", n, err)
	}
	if p := h.pending(); p != 0 {
		t.Errorf("%d jobs queued", p)
	}
}

// TestDeadLettersOfABatch: dlq list, export, requeue and purge take
// --batch; the list's footer counts what matched; list and export show the
// RequestId; export does not overwrite a file without --force.
func TestDeadLettersOfABatch(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ds := &deadletter.Store{Redis: h.rdb, Prefix: h.ns}
	b1, b2 := "bq4hz7kpmw2rtx9ca", "bq4hz7kpmw2rtx9cb"
	now := time.Now()
	for i, b := range []string{b1, b1, b1, b2, ""} {
		u := tasks.Update{PoolKey: "FC1", SubsId: fmt.Sprintf("100000000000000%d", i), PhoneNoX: "17000000000", OperateType: "updateNoA", PhoneNoA: "13800000001",
			Meta: &tasks.Meta{Version: int64(i + 1), Batch: b, Line: i + 2}}
		payload, _ := json.Marshal(u)
		rec := deadletter.Record{TaskID: fmt.Sprintf("%s-t%d", h.ns, i), Queue: h.queue, Type: tasks.TypeUpdateSubscription,
			Code: "isv.NO_NOT_EXIST", Message: "no such binding", RequestID: fmt.Sprintf("REQ-%d", i), DiedAt: now.Add(time.Duration(i) * time.Millisecond)}
		rec.SetPayload(payload)
		if err := ds.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	r := h.run("dlq", "list", "--batch", b1, "--limit", "2")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stdout", "RequestId", "REQ-0", "REQ-1", "2 of 3 matching dead letters shown (--limit 0 shows all); 5 in all")
	if strings.Contains(r.stdout, "REQ-3") {
		t.Errorf("another batch's record listed:\n%s", r)
	}
	if r := h.run("dlq", "list", "--batch", "nope"); r.code != exitUsage || !strings.Contains(r.stderr, "is not a batch id") {
		t.Errorf("bad --batch: %s", r)
	}

	out := h.dir + "/dead.csv"
	r = h.run("dlq", "export", "--batch", b1, "--out", out)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	rows := readCSV(t, out)
	col := -1
	for i, c := range rows[0] {
		if c == "_request_id" {
			col = i
		}
	}
	if len(rows) != 4 || col < 0 || rows[1][col] != "REQ-0" {
		t.Fatalf("export: %q", rows)
	}
	r = h.run("dlq", "export", "--batch", b2, "--out", out)
	if r.code != exitUsage || !strings.Contains(r.stderr, "exists; add --force") {
		t.Fatalf("overwrite without --force: %s", r)
	}
	if rows := readCSV(t, out); len(rows) != 4 {
		t.Fatalf("the export was overwritten: %q", rows)
	}
	if r := h.run("dlq", "export", "--batch", b2, "--out", out, "--force"); r.code != 0 || len(readCSV(t, out)) != 2 {
		t.Fatalf("--force: %s", r)
	}

	r = h.run("dlq", "purge", "--batch", b2, "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, " 1") {
		t.Fatalf("purge --batch --dry-run: %s", r)
	}
	r = h.run("dlq", "purge", "--batch", b1)
	if r.code != 0 {
		t.Fatalf("purge --batch: %s", r)
	}
	if n, _ := ds.Count(ctx); n != 2 {
		t.Errorf("%d records left, want 2", n)
	}
	r = h.run("dlq", "requeue", "--batch", b2, "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "dry run") {
		t.Fatalf("requeue --batch: %s", r)
	}
}

// TestInterruptedBatchDoesNotStayQueueing: a batch whose enqueue stopped
// and was never re-run shows as interrupted, with how to resume; a re-run
// resumes it.
func TestInterruptedBatchDoesNotStayQueueing(t *testing.T) {
	h := newHarness(t)
	p := h.write("a.csv", csvRows(10))
	r := h.run(p)
	id := batchID(t, r)
	ctx := context.Background()
	old := time.Now().Add(-batch.StaleAfter - time.Minute).UnixMilli()
	h.rdb.HSet(ctx, h.store.Key(id), "state", batch.StateQueueing, "created_at", old, "active_at", old)
	r = h.run("batch", "status", id)
	mustContain(t, r, "stdout", "interrupted (the enqueue that queued it stopped with 10 of 10 valid rows queued: run the same command again")
	if list := h.run("batch", "status"); !strings.Contains(list.stdout, "interrupted") {
		t.Errorf("list:\n%s", list)
	}
	r = h.run(p)
	if r.code != 0 || mustStatus(t, h, id).State != batch.StateQueued {
		t.Fatalf("re-run: %s", r)
	}
	mustContain(t, r, "stderr", "resuming batch "+id)
}

// updateCalls counts the UpdateSubscription calls the simulator got.
func updateCalls(sim *dyplsim.Sim) int {
	n := 0
	for _, c := range sim.Stats().Calls["UpdateSubscription"] {
		n += c
	}
	return n
}

// TestFileNamedAfterANumberIsMasked: a file named after a customer's phone
// number is shown masked in every message and in the batch record.
func TestFileNamedAfterANumberIsMasked(t *testing.T) {
	h := newHarness(t)
	p := h.write("13812345678.csv", csvRows(1)+"bad,row\n")
	runs := []result{h.run("--skip-invalid", p)}
	id := batchID(t, runs[0])
	runs = append(runs, h.run("batch", "status", id), h.run("batch", "status"), h.run(p))
	for _, r := range runs {
		if strings.Contains(r.stdout+r.stderr, "13812345678") {
			t.Errorf("the number in full:\n%s", r)
		}
	}
	mustContain(t, runs[1], "stdout", "138****5678.csv")
}
