package enqueuecli

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// TestInputQuirks queues files with each quirk the reader tolerates and
// checks the values that reached the queue.
func TestInputQuirks(t *testing.T) {
	cases := []struct {
		name, file, content string
		check               func(t *testing.T, u tasks.Update)
	}{
		{"bom-crlf", "a.csv", "\ufeffPoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA\r\nFC1,1000000000000001,17000000000,updateNoA,13800000001\r\n",
			func(t *testing.T, u tasks.Update) {
				if u.PoolKey != "FC1" || u.PhoneNoA != "13800000001" {
					t.Errorf("%+v", u)
				}
			}},
		{"quoted", "b.csv", "PoolKey,SubsId,PhoneNoX,OperateType,OutId\nFC1,1000000000000001,17000000000,updateOutId,\"order 7, \"\"rush\"\"\nline two\"\n",
			func(t *testing.T, u tasks.Update) {
				if u.OutId != "order 7, \"rush\"\nline two" {
					t.Errorf("OutId %q", u.OutId)
				}
			}},
		{"header-case-and-space", "c.csv", "poolkey, SUBSID ,phonenox,operatetype,phonenob\nFC1,1000000000000001,17000000000,updateNoB,  13900000001 \n",
			func(t *testing.T, u tasks.Update) {
				if u.SubsId != "1000000000000001" || u.PhoneNoB != "13900000001" || u.OperateType != "updateNoB" {
					t.Errorf("%+v", u)
				}
			}},
		{"underscore-columns", "d.csv", "_note,PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA,_code\nhello,FC1,1000000000000001,17000000000,updateNoA,13800000001,isv.X\n",
			func(t *testing.T, u tasks.Update) {
				if u.PhoneNoA != "13800000001" {
					t.Errorf("%+v", u)
				}
			}},
		{"jsonl-numbers-bools", "e.jsonl", "\ufeff{\"PoolKey\":\"FC1\",\"SubsId\":1000000000000001,\"PhoneNoX\":17000000000,\"OperateType\":\"updateIsRecordingEnabled\",\"IsRecordingEnabled\":true,\"_note\":\"x\"}\r\n\n",
			func(t *testing.T, u tasks.Update) {
				if u.SubsId != "1000000000000001" || u.PhoneNoX != "17000000000" || u.IsRecordingEnabled != "true" {
					t.Errorf("%+v", u)
				}
			}},
		{"jsonl-display-type", "f.ndjson", `{"productType":"AXB_170","subsId":"1000000000000001","phoneNoX":"17000000000","operateType":"updateCallDisplayType","CallDisplayType":1}` + "\n",
			func(t *testing.T, u tasks.Update) {
				if u.CallDisplayType != "1" || u.ProductType != "AXB_170" {
					t.Errorf("%+v", u)
				}
			}},
	}
	h := newHarness(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.queue = h.ns + "-" + c.name
			defer h.insp.DeleteQueue(h.queue, true)
			r := h.run(h.write(c.file, c.content))
			if r.code != 0 {
				t.Fatalf("%s", r)
			}
			ts := h.tasksIn()
			if len(ts) != 1 {
				t.Fatalf("%d tasks queued:\n%s", len(ts), r)
			}
			u := ts[0].u
			line := 2
			if !strings.HasSuffix(c.file, ".csv") {
				line = 1
			}
			if u.Meta == nil || u.Meta.Source != tasks.SourceCLI || u.Meta.Batch != batchID(t, r) || u.Meta.Line != line || u.Meta.Version < 1 {
				t.Errorf("meta %+v", u.Meta)
			}
			if ts[0].id != batch.TaskID(u.Meta.Batch, u.Meta.Line) {
				t.Errorf("task id %s", ts[0].id)
			}
			c.check(t, u)
		})
	}
}

func TestHeaderErrors(t *testing.T) {
	h := newHarness(t)
	cases := []struct{ content, want string }{
		{"PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA,Colour\nFC1,1,17000000000,updateNoA,13800000001,red\n",
			`x.csv:1: unknown column "Colour" (known columns: PoolKey, ProductType, SubsId, PhoneNoX, OperateType, PhoneNoA, PhoneNoB, Expiration, GroupId, CallRestrict, CallDisplayType, OutId, IsRecordingEnabled, RingConfig, ASRStatus, ASRModelId, IdempotencyKey; columns starting with _ are ignored)`},
		{"PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA,subsid\nFC1,1,17000000000,updateNoA,13800000001,2\n",
			`x.csv:1: duplicate column "subsid" (column 6): SubsId is already column 2 ("SubsId"); keep one (known columns: PoolKey,`},
		{"PoolKey;SubsId;PhoneNoX\n", "save the file as comma-separated CSV"},
		{"", "x.csv:1: the file is empty"},
	}
	for _, c := range cases {
		r := h.run("--dry-run", h.write("x.csv", c.content))
		if r.code != exitFailed {
			t.Errorf("exit %d for %q", r.code, c.content)
		}
		mustContain(t, r, "stderr", c.want)
	}
	if n := h.pending(); n != 0 {
		t.Errorf("%d tasks queued", n)
	}
}

// TestOneBadRowQueuesNothing: a bad row among thousands queues nothing and
// names the row; --skip-invalid then queues the rest.
func TestOneBadRowQueuesNothing(t *testing.T) {
	h := newHarness(t)
	rows := strings.Split(csvRows(3000), "\n")
	rows[1777] = "FC100000000000001,1000000000001777,17000001776,updateNoA,138-0000-1776"
	rows[2500] = `FC100000000000001,1000000000002500,17000002499,updateNoA,13800"002499`
	p := h.write("big.csv", strings.Join(rows, "\n"))
	r := h.run(p)
	if r.code != exitFailed {
		t.Fatalf("%s", r)
	}
	// Messages name the file masked (a temporary directory may hold a run
	// of digits).
	mustContain(t, r, "stderr", mask.Text(p)+`:1778: PhoneNoA: must be digits only`, "138******1776", "remove hyphens", mask.Text(p)+`:2501: a " inside a field`, "nothing was queued")
	if strings.Contains(r.stderr, "1380000") {
		t.Errorf("a phone number was printed:\n%s", r.stderr)
	}
	if c := counts(t, r); c != [5]int{3000, 2998, 0, 0, 2} {
		t.Errorf("summary %v", c)
	}
	if n := h.pending(); n != 0 {
		t.Fatalf("%d tasks queued", n)
	}
	if list, _ := h.store.List(context.Background(), 0); len(list) != 0 {
		t.Errorf("a batch record was made: %+v", list)
	}

	report := h.dir + "/report.csv"
	r = h.run("--skip-invalid", "--report", report, p)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	if c := counts(t, r); c != [5]int{3000, 2998, 2998, 0, 2} {
		t.Errorf("summary %v", c)
	}
	if n := h.pending(); n != 2998 {
		t.Errorf("%d tasks queued, want 2998", n)
	}
	b, _ := os.ReadFile(report)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3001 || lines[0] != "line,SubsId,OperateType,task_id,outcome,code,message,RequestId,PhoneNoX,value,warnings" {
		t.Fatalf("report has %d lines, starting %q", len(lines), lines[0])
	}
	if !strings.HasPrefix(lines[1777], `1778,1000000000001777,updateNoA,,invalid,,"PhoneNoA: must be digits only`) {
		t.Errorf("report line 1778: %s", lines[1777])
	}
	id := batchID(t, r)
	if want := fmt.Sprintf("2,1000000000000001,updateNoA,%s,pending,,,,170****0000,137****0000,", batch.TaskID(id, 2)); lines[1] != want {
		t.Errorf("report line 2:\n got %s\nwant %s", lines[1], want)
	}
	st, err := h.store.Status(context.Background(), id)
	if err != nil || st.Invalid != 2 || st.Pending != 2998 || st.State != batch.StateQueued {
		t.Errorf("batch %+v %v", st, err)
	}
}

func TestDryRun(t *testing.T) {
	h := newHarness(t)
	r := h.run("--dry-run", h.write("ok.csv", csvRows(50)))
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stdout", "read 50, valid 50, queued 0, already queued 0, invalid 0", "dry run: nothing queued")
	if n := h.pending(); n != 0 {
		t.Errorf("%d tasks queued", n)
	}
	if n, _ := h.rdb.Exists(context.Background(), h.ns+":version").Result(); n != 0 {
		t.Error("a dry run took versions")
	}
}

// TestRerunQueuesNothing: running the same file again queues nothing, also
// once asynq has forgotten the tasks.
func TestRerunQueuesNothing(t *testing.T) {
	h := newHarness(t)
	p := h.write("a.csv", csvRows(700))
	r := h.run(p)
	if r.code != 0 || counts(t, r) != [5]int{700, 700, 700, 0, 0} {
		t.Fatalf("%s", r)
	}
	r = h.run(p)
	if r.code != 0 || counts(t, r) != [5]int{700, 700, 0, 700, 0} {
		t.Fatalf("second run:\n%s", r)
	}
	mustContain(t, r, "stderr", "was already queued as batch")

	// Run the tasks to completion: asynq forgets them at once (a batch
	// row keeps no completed task).
	srv := asynq.NewServerFromRedisClient(h.rdb, asynq.Config{Queues: map[string]int{h.queue: 1}, Concurrency: 20,
		TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for h.pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	srv.Shutdown()
	if info, err := h.insp.GetQueueInfo(h.queue); err != nil || info.Completed != 0 || info.Processed < 700 {
		t.Fatalf("after the run: %+v, %v", info, err)
	}
	// Same content through stdin: the same batch.
	b, _ := os.ReadFile(p)
	r = h.runCtx(context.Background(), string(b), "-")
	if r.code != 0 || counts(t, r) != [5]int{700, 700, 0, 700, 0} {
		t.Fatalf("run after retention:\n%s", r)
	}
	if n := h.pending(); n != 0 {
		t.Errorf("%d tasks queued again", n)
	}
	// The batch id depends on the rows only, not on the queue.
	r = h.run("--queue", h.ns+"-other", "--dry-run", p)
	if batchID(t, r) != batchID(t, h.run("--dry-run", p)) {
		t.Error("another queue gave another batch id")
	}
}

// TestVersionsFollowLines: every row's version is above the one of the row
// before it, so of two rows for one binding field the later wins, across
// chunks and version blocks.
func TestVersionsFollowLines(t *testing.T) {
	h := newHarness(t)
	rows := strings.Split(strings.TrimSpace(csvRows(2500)), "\n")
	// Lines 3 and 4 update one field; so do lines 10 and 2400.
	rows[3] = "FC100000000000001,1000000000000002,17000000001,updateNoA,13600000002"
	rows[2399] = "FC100000000000001,1000000000000009,17000000008,updateNoA,13600000009"
	r := h.run("--concurrency", "32", h.write("v.csv", strings.Join(rows, "\n")+"\n"))
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	ts := h.tasksIn()
	if len(ts) != 2500 {
		t.Fatalf("%d tasks", len(ts))
	}
	for i := 1; i < len(ts); i++ {
		if ts[i].u.Meta.Version <= ts[i-1].u.Meta.Version {
			t.Fatalf("line %d has version %d, line %d has %d", ts[i].u.Meta.Line, ts[i].u.Meta.Version, ts[i-1].u.Meta.Line, ts[i-1].u.Meta.Version)
		}
	}
	if a, b := ts[1].u, ts[2].u; a.SubsId != b.SubsId || b.PhoneNoA != "13600000002" || b.Meta.Version <= a.Meta.Version {
		t.Errorf("lines 3, 4: %+v %+v", a, b)
	}
}

// TestInterruptedRunResumes: Ctrl-C mid-run, then the same command queues
// the rest; every row is queued exactly once, with versions in line order.
func TestInterruptedRunResumes(t *testing.T) {
	h := newHarness(t)
	const n = 12000
	p := h.write("big.csv", csvRows(n))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for h.pending() < 2000 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	r := h.runCtx(ctx, "", "--concurrency", "4", p)
	if r.code != exitInterrupted {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "interrupted", "run the same command again", "enqueue --queue "+h.queue+" --concurrency 4 "+p)
	first := counts(t, r)[2]
	if first == 0 || first >= n {
		t.Fatalf("first run queued %d", first)
	}
	if got := h.pending(); got != first {
		t.Errorf("first run said %d queued, the queue holds %d", first, got)
	}
	st, _ := h.store.Status(context.Background(), batchID(t, r))
	if st.State != batch.StateQueueing || int(st.Queued) != first {
		t.Errorf("after interrupt: state %s, record says %d queued", st.State, st.Queued)
	}

	r = h.run(p)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "resuming batch")
	c := counts(t, r)
	if c[2]+c[3] != n || c[3] != first {
		t.Errorf("second run: queued %d, already %d; first run queued %d", c[2], c[3], first)
	}
	ts := h.tasksIn()
	if len(ts) != n {
		t.Fatalf("%d tasks for %d rows", len(ts), n)
	}
	for i := 1; i < len(ts); i++ {
		if ts[i].u.Meta.Line != ts[i-1].u.Meta.Line+1 || ts[i].u.Meta.Version <= ts[i-1].u.Meta.Version {
			t.Fatalf("lines %d, %d: versions %d, %d", ts[i-1].u.Meta.Line, ts[i].u.Meta.Line, ts[i-1].u.Meta.Version, ts[i].u.Meta.Version)
		}
	}
	st, _ = h.store.Status(context.Background(), batchID(t, r))
	if st.State != batch.StateQueued || st.Queued != n || st.Pending != n {
		t.Errorf("record %+v", st)
	}
}

func TestBatchCancel(t *testing.T) {
	h := newHarness(t)
	p := h.write("wrong.csv", csvRows(1500))
	r := h.run(p)
	id := batchID(t, r)
	// One job already ran.
	info, err := h.insp.GetTaskInfo(h.queue, batch.TaskID(id, 2))
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatal(info, err)
	}
	if err := h.store.Mark(context.Background(), id, 2, batch.RowState{Outcome: batch.OutcomeApplied, Code: "OK"}); err != nil {
		t.Fatal(err)
	}
	if err := h.insp.DeleteTask(h.queue, batch.TaskID(id, 2)); err != nil {
		t.Fatal(err)
	}

	r = h.run("batch", "cancel", id)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stdout", "batch "+id+" cancelled in ", "rows: applied 1, superseded 0, dead 0, cancelled 1499 (no call after the cancel)",
		"removed 1499 of its jobs from queue "+h.queue)
	if n := h.pending(); n != 0 {
		t.Errorf("%d jobs left", n)
	}
	r = h.run("batch", "status", id)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stdout", "state              cancelled", "cancelled  -     1499", "applied    OK    1")
	r = h.run(p)
	if r.code != exitUsage {
		t.Fatalf("re-run of a cancelled batch: %s", r)
	}
	mustContain(t, r, "stderr", "was cancelled, so nothing is queued again")
	if strings.Contains(r.stderr, "queueing") {
		t.Errorf("a re-run of a cancelled batch says it is queueing:\n%s", r)
	}
	if n := h.pending(); n != 0 {
		t.Errorf("%d jobs queued after cancel", n)
	}
}

func TestExitCodes(t *testing.T) {
	h := newHarness(t)
	ok := h.write("ok.csv", csvRows(3))
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "no input file"},
		{[]string{ok, ok}, exitUsage, "one input file at a time"},
		{[]string{"--bogus", ok}, exitUsage, "flag provided but not defined"},
		{[]string{"--format", "xml", ok}, exitUsage, `--format "xml"`},
		{[]string{"--concurrency", "0", ok}, exitUsage, "--concurrency 0"},
		{[]string{h.dir + "/missing.csv"}, exitUsage, "missing.csv: no such file or directory"},
		{[]string{"--wait", "--dry-run", ok}, exitUsage, "do not go together"},
		{[]string{"batch", "frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"batch", "status", "nope"}, exitUsage, "is not a batch id"},
		{[]string{"batch", "status", "bzzzzzzzzzzzzzzzz"}, exitUsage, "batch not found"},
		{[]string{"dlq", "purge"}, exitUsage, "add --all"},
		{[]string{"dlq", "export"}, exitUsage, "needs --out"},
		{[]string{"dlq", "list", "--since", "yesterday"}, exitUsage, "neither a time"},
		{[]string{"queue", "pause"}, exitUsage, "needs the queues"},
		{[]string{"dlq"}, exitUsage, "Usage:"},
	}
	for _, c := range cases {
		r := h.run(c.args...)
		if r.code != c.code || !strings.Contains(r.stderr+r.stdout, c.want) {
			t.Errorf("%q: want exit %d with %q, got %s", c.args, c.code, c.want, r)
		}
		if strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 && c.args != nil && c.args[0] != "dlq" {
			t.Errorf("%q: more than one line of error:\n%s", c.args, r.stderr)
		}
	}

	// Redis unreachable: one clear line, exit 2, password hidden.
	var out, errb safebuf.Buffer
	env := func(k string) string {
		if k == "REDIS_URL" {
			return "redis://:s3cret@127.0.0.1:1/0"
		}
		return ""
	}
	code := Run(context.Background(), []string{ok}, env, strings.NewReader(""), &out, &errb)
	if code != exitUsage || !strings.Contains(errb.String(), "cannot reach Redis at redis://:xxxxx@127.0.0.1:1/0") || strings.Contains(errb.String(), "s3cret") ||
		strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
		t.Errorf("unreachable Redis: exit %d:\n%s", code, errb.String())
	}
}

func TestHelp(t *testing.T) {
	h := newHarness(t)
	for _, args := range [][]string{{"--help"}, {"help"}, {"batch", "--help"}, {"batch", "status", "--help"}, {"dlq", "--help"},
		{"dlq", "export", "-h"}, {"queue", "--help"}, {"queue", "status", "--help"}} {
		r := h.run(args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "Examples") {
			t.Errorf("%q: %s", args, r)
		}
	}
	r := h.run("--help")
	mustContain(t, r, "stdout", "--skip-invalid", "--wait-timeout", "--report FILE", "--show-numbers", "--redis-timeout", "--concurrency",
		"REDIS_URL", "LOG_LEVEL", "BATCH_WINDOW", "Exit status", "PoolKey, ProductType, SubsId")
	if strings.Contains(r.stdout, "Other flags") {
		t.Errorf("help lists flags twice:\n%s", r.stdout)
	}
}

// TestCancelWhileQueueing: batch cancel during the run stops it, and no job
// of the batch is left in the queue.
func TestCancelWhileQueueing(t *testing.T) {
	h := newHarness(t)
	p := h.write("wrong.csv", csvRows(30000))
	done := make(chan result, 1)
	go func() { done <- h.run("--concurrency", "2", p) }()
	deadline := time.Now().Add(30 * time.Second)
	for h.pending() < 1500 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	list, err := h.store.List(context.Background(), 1)
	if err != nil || len(list) != 1 {
		t.Fatal(list, err)
	}
	c := h.run("batch", "cancel", list[0].ID)
	if c.code != 0 {
		t.Fatalf("cancel: %s", c)
	}
	mustContain(t, c, "stderr", "was still being queued")
	r := <-done
	if r.code != exitGaveUp {
		t.Fatalf("%s\ncancel:\n%s", r, c)
	}
	mustContain(t, r, "stderr", "was cancelled while it was being queued")
	if n := h.pending(); n != 0 {
		t.Errorf("%d jobs left in the queue", n)
	}
	st, _ := h.store.Status(context.Background(), list[0].ID)
	if st.Pending != 0 || st.Cancelled != st.Queued || st.State != batch.StateCancelled {
		t.Errorf("record %+v", st)
	}
}

// TestIdempotencyKey: a row with an IdempotencyKey gets the key's task id;
// a key another producer already queued makes the row a duplicate.
func TestIdempotencyKey(t *testing.T) {
	h := newHarness(t)
	prod := &tasks.Producer{Client: asynq.NewClientFromRedisClient(h.rdb), Redis: h.rdb, Queue: h.queue, KeyPrefix: h.ns}
	if _, err := prod.Enqueue(context.Background(), tasks.Update{PoolKey: "FC1", SubsId: "1000000000000001", PhoneNoX: "17000000000",
		OperateType: "updateNoA", PhoneNoA: "13800000001", IdempotencyKey: "order-1"}); err != nil {
		t.Fatal(err)
	}
	p := h.write("k.csv", "PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA,IdempotencyKey\n"+
		"FC1,1000000000000001,17000000000,updateNoA,13800000001,order-1\n"+
		"FC1,1000000000000002,17000000001,updateNoA,13800000002,order-2\n")
	report := h.dir + "/r.csv"
	r := h.run("--report", report, p)
	if r.code != 0 || counts(t, r) != [5]int{2, 2, 1, 1, 0} {
		t.Fatalf("%s", r)
	}
	b, _ := os.ReadFile(report)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if !strings.HasPrefix(lines[1], "2,1000000000000001,updateNoA,"+tasks.TaskIDForKey("order-1")+",duplicate,,\"IdempotencyKey already used") ||
		!strings.HasPrefix(lines[2], "3,1000000000000002,updateNoA,"+tasks.TaskIDForKey("order-2")+",pending,") {
		t.Errorf("report:\n%s", b)
	}
	r = h.run(p)
	if r.code != 0 || counts(t, r) != [5]int{2, 2, 0, 2, 0} {
		t.Fatalf("re-run: %s", r)
	}
	st, _ := h.store.Status(context.Background(), batchID(t, r))
	if st.Duplicate != 1 || st.Pending != 1 || st.Queued != 2 {
		t.Errorf("record %+v", st.Counts)
	}
}

func TestQueueControl(t *testing.T) {
	h := newHarness(t)
	h.run(h.write("a.csv", csvRows(2)))
	r := h.run("queue", "pause", h.queue)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stdout", "paused ["+h.queue+"]", "enqueue queue resume "+h.queue)
	r = h.run("queue", "status", h.queue)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	if !regexp.MustCompile(h.queue + ` +paused +2 +2 `).MatchString(r.stdout) {
		t.Errorf("status:\n%s", r.stdout)
	}
	mustContain(t, r, "stdout", "no worker is halted")
	r = h.run("queue", "resume", h.queue)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	r = h.run("queue", "status", h.queue)
	if !regexp.MustCompile(h.queue + ` +running +2 +2 `).MatchString(r.stdout) {
		t.Errorf("status after resume:\n%s", r.stdout)
	}
}
