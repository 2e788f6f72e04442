package enqueuecli

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/logging"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// startSim starts the simulator with n sample bindings.
func startSim(t *testing.T, n int) (*dyplsim.Sim, *dypls.Client) {
	t.Helper()
	sim, srv, addr, err := dyplsim.Start(dyplsim.Config{Seed: n, RandSeed: 1}, "127.0.0.1:0")
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
	return sim, api
}

// startWorker runs an in-process worker on queues of the harness's Redis;
// stop it with Shutdown (also done when the test ends).
func startWorker(t *testing.T, h *harness, api *dypls.Client, queues ...string) *worker.Worker {
	t.Helper()
	return startWorkerWith(t, h, api, nil, queues...)
}

// startWorkerWith is startWorker with the config changed by mod.
func startWorkerWith(t *testing.T, h *harness, api *dypls.Client, mod func(*worker.Config), queues ...string) *worker.Worker {
	t.Helper()
	// The worker's lines go through the sink that fails the test on a
	// line repeating a key.
	log, err := logging.New("info", "json", safebuf.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	qs := map[string]int{}
	for _, q := range queues {
		qs[q] = 1
	}
	cfg := worker.Config{
		Queues: qs, Concurrency: 10, MaxAttempts: 3,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, ThrottleDelay: 100 * time.Millisecond,
		HaltProbeMin: 5 * time.Second, HaltProbeMax: 10 * time.Second, HaltWait: 500 * time.Millisecond,
		SweepInterval: 500 * time.Millisecond, TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: 100 * time.Millisecond,
		KeyPrefix: h.ns, WorkerID: h.ns + "-w-" + strings.Join(queues, "+"), Logger: log,
	}
	if mod != nil {
		mod(&cfg)
	}
	w, err := worker.New(cfg, h.rdb, api)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return w
}

// readCSV reads a whole CSV file.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestWaitAndReportThroughWorker queues a file whose rows end applied,
// superseded and dead through a real worker and the simulator, follows it
// with --wait and checks the outcome table and --report.
func TestWaitAndReportThroughWorker(t *testing.T) {
	h := newHarness(t)
	sim, api := startSim(t, 20)
	var b strings.Builder
	b.WriteString("PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA,PhoneNoB\n")
	for i := 1; i <= 10; i++ { // lines 2-11: applied
		s := dyplsim.SeedBinding(i)
		fmt.Fprintf(&b, "%s,%s,%s,updateNoA,137%08d,\n", s.PoolKey, s.SubsId, s.PhoneNoX, i)
	}
	fmt.Fprintf(&b, "FC100000000000001,1000000000000099,17000000098,updateNoA,13700000099,\n") // line 12: no such binding
	fmt.Fprintf(&b, "FC100000000000001,1000000000000011,17100000000,updateNoA,13700000011,\n") // line 13: X not in the pool
	s12 := dyplsim.SeedBinding(12)
	fmt.Fprintf(&b, "%s,%s,%s,updateNoB,,13600000012\n", s12.PoolKey, s12.SubsId, s12.PhoneNoX) // line 14: superseded
	s13 := dyplsim.SeedBinding(13)                                                              // lines 15, 16: one field twice, the later wins
	fmt.Fprintf(&b, "%s,%s,%s,updateNoA,13500000001,\n%s,%s,%s,updateNoA,13500000002,\n", s13.PoolKey, s13.SubsId, s13.PhoneNoX, s13.PoolKey, s13.SubsId, s13.PhoneNoX)
	p := h.write("mixed.csv", b.String())

	// Queue the file with no worker running, then apply a newer update of
	// line 14's field from the Go API, so that line 14 loses to it.
	r := h.run(p)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	id := batchID(t, r)
	live := h.ns + "-live"
	prod := &tasks.Producer{Client: asynq.NewClientFromRedisClient(h.rdb), Redis: h.rdb, Queue: live, KeyPrefix: h.ns}
	newer, err := prod.Enqueue(context.Background(), tasks.Update{PoolKey: s12.PoolKey, SubsId: s12.SubsId, PhoneNoX: s12.PhoneNoX,
		OperateType: "updateNoB", PhoneNoB: "13600000999"})
	if err != nil {
		t.Fatal(err)
	}
	wl := startWorker(t, h, api, live)
	deadline := time.Now().Add(15 * time.Second)
	for {
		info, err := h.insp.GetTaskInfo(live, newer.TaskID)
		if err == nil && info.State == asynq.TaskStateCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live update did not complete: %v %v", info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wl.Shutdown()

	startWorker(t, h, api, h.queue)
	report := h.dir + "/report.csv"
	r = h.run("--wait", "--wait-timeout", "30s", "--report", report, p)
	if r.code != exitFailed { // dead rows make --wait exit 1
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stdout", "read 15, valid 15, queued 0, already queued 15, invalid 0")
	mustContain(t, r, "stderr", "2 rows are dead", "enqueue dlq list")
	table := r.stdout[strings.Index(r.stdout, "OUTCOME"):]
	for _, want := range []string{"applied     OK", "superseded  Superseded", "dead        isv."} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if !strings.Contains(table, "total") || !strings.Contains(table, "15") {
		t.Errorf("table:\n%s", table)
	}
	st, err := h.store.Status(context.Background(), id)
	if err != nil || st.Applied+st.Superseded != 13 || st.Superseded < 1 || st.Dead != 2 || !st.Done() {
		t.Errorf("batch %+v %v", st.Counts, err)
	}
	// Of lines 15 and 16 the later won, whatever order they ran in.
	if b, _ := sim.Binding(s13.SubsId); b.PhoneNoA != "13500000002" {
		t.Errorf("binding 13 holds A %s, want line 16's", b.PhoneNoA)
	}

	recs := readCSV(t, report)
	if len(recs) != 16 {
		t.Fatalf("report has %d rows", len(recs))
	}
	for _, rec := range recs[1:] {
		line, outcome, code, msg, rid := rec[0], rec[4], rec[5], rec[6], rec[7]
		switch line {
		case "12", "13":
			if outcome != "dead" || !strings.HasPrefix(code, "isv.") || msg == "" {
				t.Errorf("line %s: %q", line, rec)
			}
		case "14":
			if outcome != "superseded" || code != "Superseded" || rec[3] != batch.TaskID(id, 14) {
				t.Errorf("line 14: %q", rec)
			}
		case "15":
			if outcome != "superseded" && (outcome != "applied" || rid == "") {
				t.Errorf("line 15: %q", rec)
			}
		default:
			if outcome != "applied" || code != "OK" || rid == "" {
				t.Errorf("line %s: %q", line, rec)
			}
		}
		if strings.Contains(strings.Join(rec, ","), "13700000") || !strings.Contains(rec[8], "****") {
			t.Errorf("line %s: numbers not masked: %q", line, rec)
		}
	}

	// --show-numbers: in full, in a file only its owner reads.
	r = h.run("--report", report, "--show-numbers", p)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	if fi, err := os.Stat(report); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("report mode %v %v", fi.Mode(), err)
	}
	if recs := readCSV(t, report); recs[1][8] != "17000000000" || recs[1][9] != "13700000001" {
		t.Errorf("--show-numbers: %q", recs[1])
	}

	// batch status shows the same.
	r = h.run("batch", "status", id)
	mustContain(t, r, "stdout", "every row has ended", "superseded  Superseded")
}

// TestHaltDuringWait: workers halted by an account-wide code stop --wait
// with exit 3 and the reason.
func TestHaltDuringWait(t *testing.T) {
	h := newHarness(t)
	sim, api := startSim(t, 5)
	sim.AddFault(dyplsim.FaultRule{Kind: dyplsim.FaultCode, Code: "isv.ACCOUNT_ABNORMAL", Message: "account abnormal"})
	startWorker(t, h, api, h.queue)
	start := time.Now()
	r := h.run("--wait", "--wait-timeout", "30s", h.write("a.csv", csvRows(5)))
	if r.code != exitGaveUp {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "workers are halted", "by isv.ACCOUNT_ABNORMAL", "enqueue batch status --wait")
	if el := time.Since(start); el > 15*time.Second {
		t.Errorf("took %s to notice the halt", el)
	}
	// queue status shows the halt too.
	r = h.run("queue", "status", h.queue)
	if r.code != exitGaveUp {
		t.Errorf("queue status: %s", r)
	}
	mustContain(t, r, "stdout", h.queue, "isv.ACCOUNT_ABNORMAL")
}

// TestWaitTimeout: nothing runs the jobs, so --wait gives up.
func TestWaitTimeout(t *testing.T) {
	h := newHarness(t)
	r := h.run("--wait", "--wait-timeout", "300ms", h.write("a.csv", csvRows(3)))
	if r.code != exitGaveUp {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "gave up waiting after 300ms", "3 of 3 rows have not ended (pending 3")
	// A halt record written by a worker elsewhere stops it at once.
	halts := &admin.Halts{Redis: h.rdb, Prefix: h.ns}
	if err := halts.Report(context.Background(), admin.Halt{Worker: "w9", Code: "InvalidAccessKeyId.NotFound", Message: "Specified access key is not found."}); err != nil {
		t.Fatal(err)
	}
	r = h.run("batch", "status", "--wait", batchID(t, r))
	if r.code != exitGaveUp {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "worker w9 halted since", "InvalidAccessKeyId.NotFound: Specified access key is not found.")
}

// TestDeadLetterRoundTrip: rows die, dlq export writes them to a 0600 file,
// the fixed file is queued as new versions and applied, and the dead
// letters are purged.
func TestDeadLetterRoundTrip(t *testing.T) {
	h := newHarness(t)
	_, api := startSim(t, 10)
	var b strings.Builder
	b.WriteString("PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA\n")
	for i := 1; i <= 3; i++ { // X numbers outside the pool: isv.NO_NOT_EXIST
		fmt.Fprintf(&b, "FC100000000000001,%s,1710000000%d,updateNoA,1370000000%d\n", dyplsim.SeedBinding(i).SubsId, i, i)
	}
	b.WriteString("FC100000000000001,1000000000000099,17000000098,updateNoA,13700000099\n") // no such binding
	startWorker(t, h, api, h.queue)
	r := h.run("--wait", "--wait-timeout", "30s", h.write("bad.csv", b.String()))
	if r.code != exitFailed {
		t.Fatalf("%s", r)
	}
	id := batchID(t, r)

	r = h.run("dlq", "list", "--code", "isv.NO_NOT_EXIST", "--since", "1h")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stdout", "3 of 3 matching dead letters shown", id+":2", "isv.NO_NOT_EXIST", "4 in all")
	if strings.Contains(r.stdout, "17100000001") {
		t.Errorf("list shows a full number:\n%s", r.stdout)
	}

	out := h.dir + "/dead.csv"
	r = h.run("dlq", "export", "--code", "isv.NO_NOT_EXIST", "--queue", h.queue, "--out", out)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stdout", "exported 3 dead letters")
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export mode %v %v", fi, err)
	}
	recs := readCSV(t, out)
	if want := strings.Join(append(append([]string(nil), tasks.KnownColumns...), "_code", "_message", "_task_id", "_idempotency_key", "_exported_at", "_request_id"), ","); strings.Join(recs[0], ",") != want {
		t.Fatalf("export header %q", recs[0])
	}
	oldVersion := map[string]int64{}
	for _, rec := range recs[1:] {
		if rec[3] != "1710000000"+rec[2][len(rec[2])-1:] || rec[17] != "isv.NO_NOT_EXIST" || rec[19] == "" {
			t.Errorf("export row %q", rec)
		}
		dl, ok, _ := (&deadletter.Store{Redis: h.rdb, Prefix: h.ns}).Get(context.Background(), rec[19])
		if !ok {
			t.Fatalf("no record for %s", rec[19])
		}
		oldVersion[rec[2]] = dl.Version
		// The fix: the binding's real X number.
		i := int(rec[2][len(rec[2])-1] - '0')
		rec[3] = dyplsim.SeedBinding(i).PhoneNoX
	}
	f, _ := os.Create(out)
	cw := csv.NewWriter(f)
	_ = cw.WriteAll(recs)
	f.Close()

	r = h.run("--wait", "--wait-timeout", "30s", out)
	if r.code != 0 {
		t.Fatalf("fixed file: %s", r)
	}
	mustContain(t, r, "stdout", "queued 3", "applied  OK    3")
	// A finished batch row is not kept as a completed task: its outcome
	// lives in the batch record. (That the fixed rows have newer versions
	// than the dead jobs shows below: the requeued dead jobs lose to them.)
	if done := h.tasksInState(asynq.TaskStateCompleted); len(done) != 0 {
		t.Errorf("%d completed batch tasks kept in asynq", len(done))
	}

	r = h.run("dlq", "requeue", "--code", "isv.NO_NOT_EXIST", "--dry-run")
	mustContain(t, r, "stdout", "dry run, nothing changed: would requeue 3")
	r = h.run("dlq", "purge", "--code", "isv.NO_NOT_EXIST", "--dry-run")
	mustContain(t, r, "stdout", "dry run, nothing changed: would purge 3")
	r = h.run("dlq", "list", "--limit", "2")
	mustContain(t, r, "stdout", "2 of 4 matching dead letters shown (--limit 0 shows all); 4 in all")

	// Requeued as they were, with their old versions, the dead jobs lose to
	// the fixed rows: superseded, not applied.
	r = h.run("dlq", "requeue", "--code", "isv.NO_NOT_EXIST")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stdout", "requeued 3")
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, _ := h.store.Status(context.Background(), id)
		if st.Superseded == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requeued jobs were not superseded: batch %+v", st.Counts)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r = h.run("dlq", "purge", "--all")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stdout", "purged 1")
	r = h.run("dlq", "list")
	mustContain(t, r, "stdout", "no dead letters match (0 in all)")
}

// tasksInState lists the tasks of the harness's queue in state.
func (h *harness) tasksInState(state asynq.TaskState) []queued {
	h.t.Helper()
	var infos []*asynq.TaskInfo
	var err error
	switch state {
	case asynq.TaskStateCompleted:
		infos, err = h.insp.ListCompletedTasks(h.queue, asynq.PageSize(1000))
	case asynq.TaskStateArchived:
		infos, err = h.insp.ListArchivedTasks(h.queue, asynq.PageSize(1000))
	}
	if err != nil {
		h.t.Fatal(err)
	}
	var out []queued
	for _, in := range infos {
		u, err := tasks.Decode(in.Payload)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, queued{id: in.ID, u: u})
	}
	return out
}

// TestExportedKeyedRowIsQueued: a row queued with an IdempotencyKey dies;
// its export, fixed and queued, runs as a new version (not a duplicate of
// the dead job); the purge advice printed then removes only the dead
// letters of the rows it queued, and only those that died before the
// export.
func TestExportedKeyedRowIsQueued(t *testing.T) {
	h := newHarness(t)
	_, api := startSim(t, 10)
	sb1, sb2 := dyplsim.SeedBinding(1), dyplsim.SeedBinding(2)
	bad := fmt.Sprintf("PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA,IdempotencyKey\nFC100000000000001,%s,17100000001,updateNoA,13700000001,order-1\n", sb1.SubsId)
	startWorker(t, h, api, h.queue)
	r := h.run("--wait", "--wait-timeout", "30s", h.write("bad.csv", bad))
	if r.code != exitFailed {
		t.Fatalf("%s", r)
	}
	out := h.dir + "/dead.csv"
	r = h.run("dlq", "export", "--queue", h.queue, "--out", out)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	if strings.Contains(r.stdout, "dlq purge") {
		t.Errorf("export advises a purge before any fix is queued:\n%s", r)
	}
	// A job that dies after the export keeps its dead letter.
	later := fmt.Sprintf("PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA\nFC100000000000001,%s,17100000002,updateNoA,13700000002\n", sb2.SubsId)
	if r := h.run("--wait", "--wait-timeout", "30s", h.write("later.csv", later)); r.code != exitFailed {
		t.Fatalf("%s", r)
	}

	recs := readCSV(t, out)
	col := map[string]int{}
	for i, c := range recs[0] {
		col[c] = i
	}
	if len(recs) != 2 {
		t.Fatalf("export: %q", recs)
	}
	deadID := recs[1][col["_task_id"]]
	recs[1][col["PhoneNoX"]] = sb1.PhoneNoX // the fix
	f, _ := os.Create(out)
	cw := csv.NewWriter(f)
	_ = cw.WriteAll(recs)
	f.Close()

	r = h.run("--wait", "--wait-timeout", "30s", out)
	if r.code != 0 {
		t.Fatalf("fixed file: %s", r)
	}
	mustContain(t, r, "stdout", "queued 1", "applied  OK    1")
	if strings.Contains(r.stdout, "duplicate") {
		t.Errorf("the fixed row was taken for a duplicate:\n%s", r)
	}
	m := regexp.MustCompile(`enqueue (dlq purge [^\n]*)`).FindStringSubmatch(r.stdout + r.stderr)
	if m == nil {
		t.Fatalf("no purge advice:\n%s", r)
	}
	if !strings.Contains(m[1], "--until ") || !strings.Contains(m[1], deadID) {
		t.Errorf("purge advice %q lacks --until or the dead task id %s", m[1], deadID)
	}
	r = h.run(strings.Fields(m[1])...)
	if r.code != 0 {
		t.Fatalf("advised purge: %s", r)
	}
	mustContain(t, r, "stdout", "purged 1")
	recsLeft, err := (&deadletter.Store{Redis: h.rdb, Prefix: h.ns}).List(context.Background(), deadletter.Filter{})
	if err != nil || len(recsLeft) != 1 || recsLeft[0].SubsId != sb2.SubsId {
		t.Errorf("dead letters left after the advised purge: %v %v", recsLeft, err)
	}
}

// A file that still carries the IdempotencyKey of the dead job it was
// exported from is refused: queued, the row would be a duplicate of that
// job and never run.
func TestExportedRowWithDeadJobsKeyRefused(t *testing.T) {
	h := newHarness(t)
	sb := dyplsim.SeedBinding(1)
	file := fmt.Sprintf("PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA,IdempotencyKey,_code,_task_id\nFC100000000000001,%s,%s,updateNoA,13700000001,order-1,isv.NO_NOT_EXIST,%s\n",
		sb.SubsId, sb.PhoneNoX, tasks.TaskIDForKey("order-1"))
	r := h.run(h.write("old-export.csv", file))
	if r.code != exitFailed || h.pending() != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "old-export.csv:2: IdempotencyKey:")
}

// TestMaxPendingBoundsTheQueue: a batch of 3,000 rows with --max-pending
// 1000 never has more than 1,000 of its rows in asynq at once, is fed as
// rows end, and completes. Finished rows leave no completed task behind;
// the batch record keeps each row's outcome and RequestId.
func TestMaxPendingBoundsTheQueue(t *testing.T) {
	h := newHarness(t)
	const n = 3000
	_, api := startSim(t, n)
	startWorker(t, h, api, h.queue)
	p := h.write("window.csv", csvRows(n))

	var peak atomic.Int64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			info, err := h.insp.GetQueueInfo(h.queue)
			if err != nil {
				continue
			}
			if open := int64(info.Pending + info.Active + info.Scheduled + info.Retry); open > peak.Load() {
				peak.Store(open)
			}
		}
	}()
	r := h.run("--max-pending", "1000", "--wait", "--wait-timeout", "3m", p)
	close(stop)
	<-sampled
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "(--max-pending 1000): the rest are queued as workers end rows")
	if pk := peak.Load(); pk == 0 || pk > 1000 {
		t.Errorf("at most %d rows were in the queue at once, want 1 to 1000", pk)
	}
	id := batchID(t, r)
	st, err := h.store.Status(context.Background(), id)
	if err != nil || st.Applied != n {
		t.Fatalf("batch %+v, %v", st.Counts, err)
	}
	if done := h.tasksInState(asynq.TaskStateCompleted); len(done) != 0 {
		t.Errorf("%d completed batch tasks kept in asynq; the batch record holds their outcome", len(done))
	}
	rows, err := h.store.Rows(context.Background(), id, 2, n+1)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if row.Outcome != batch.OutcomeApplied || row.RequestID == "" {
			t.Fatalf("line %d: %+v", row.Line, row)
		}
	}
}

// TestMaxPendingRefusesNegative: --max-pending takes 0 (no limit) or more.
func TestMaxPendingRefusesNegative(t *testing.T) {
	h := newHarness(t)
	r := h.run("--max-pending", "-1", h.write("a.csv", csvRows(1)))
	if r.code != exitUsage {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "max-pending")
}
