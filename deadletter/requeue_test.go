package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/tasks"
)

// newQueue returns an asynq client and inspector on the test Redis and a
// queue of the test's own, deleted when the test ends.
func newQueue(t *testing.T, s *Store) (*asynq.Client, *asynq.Inspector, string) {
	t.Helper()
	c := asynq.NewClientFromRedisClient(s.Redis)
	in := asynq.NewInspectorFromRedisClient(s.Redis)
	q := s.Prefix + "-q"
	t.Cleanup(func() { _ = in.DeleteQueue(q, true) })
	return c, in, q
}

const testType = "dypls:update_subscription"

func enqueue(t *testing.T, c *asynq.Client, q, id, payload string) {
	t.Helper()
	if _, err := c.Enqueue(asynq.NewTask(testType, []byte(payload)), asynq.Queue(q), asynq.TaskID(id)); err != nil {
		t.Fatal(err)
	}
}

// deadJob enqueues a task, archives it and writes its record.
func deadJob(t *testing.T, s *Store, c *asynq.Client, in *asynq.Inspector, q, id, payload string) {
	t.Helper()
	enqueue(t, c, q, id, payload)
	if err := in.ArchiveTask(q, id); err != nil {
		t.Fatal(err)
	}
	putRecord(t, s, q, id, payload)
}

func putRecord(t *testing.T, s *Store, q, id, payload string) {
	t.Helper()
	r := Record{TaskID: id, Queue: q, Type: testType, Code: "isv.BIND_CONFLICT", Reason: ReasonPermanent, Attempts: 1, DiedAt: t0}
	r.SetPayload([]byte(payload))
	if err := s.Put(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func state(t *testing.T, in *asynq.Inspector, q, id string) string {
	t.Helper()
	info, err := in.GetTaskInfo(q, id)
	if errors.Is(err, asynq.ErrTaskNotFound) {
		return "gone"
	}
	if err != nil {
		t.Fatal(err)
	}
	return info.State.String()
}

func hasRecord(t *testing.T, s *Store, id string) bool {
	t.Helper()
	_, ok, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func outcomes(list []Outcome) map[string]string {
	m := map[string]string{}
	for _, o := range list {
		m[o.TaskID] = o.Code
	}
	return m
}

const payload = `{"SubsId":"1000000768790001","PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":"13812345678","PoolKey":"FC1","_meta":{"schema":1,"version":5,"enqueued_at":"2030-01-01T00:00:00Z","source":"cli"}}`

func TestRequeue(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	c, in, q := newQueue(t, s)
	now := time.Date(2030, 1, 6, 7, 8, 9, 0, time.UTC)
	rq := &Requeuer{Store: s, Inspector: in, Client: c, Now: func() time.Time { return now }}

	deadJob(t, s, c, in, q, "dead", payload)
	enqueue(t, c, q, "live", payload) // pending, with a stale record
	putRecord(t, s, q, "live", payload)
	putRecord(t, s, q, "trimmed", payload) // asynq forgot it
	putRecord(t, s, q, "bad", "not json")

	got, err := rq.Requeue(ctx, Filter{}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"dead": OutcomeWouldRequeue, "live": OutcomeLive, "trimmed": OutcomeWouldRequeue, "bad": OutcomeFailed}
	if m := outcomes(got); len(m) != len(want) || m["dead"] != want["dead"] || m["live"] != want["live"] || m["trimmed"] != want["trimmed"] || m["bad"] != want["bad"] {
		t.Fatalf("dry run outcomes %v, want %v", m, want)
	}
	if st := state(t, in, q, "dead"); st != "archived" {
		t.Errorf("dry run: task is %s", st)
	}
	if n, _ := s.Count(ctx); n != 4 {
		t.Errorf("dry run: %d records left, want 4", n)
	}

	got, err = rq.Requeue(ctx, Filter{}, false)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"dead": OutcomeRequeued, "live": OutcomeLive, "trimmed": OutcomeRequeued, "bad": OutcomeFailed}
	for id, code := range outcomes(got) {
		if want[id] != code {
			t.Errorf("%s: outcome %s, want %s", id, code, want[id])
		}
	}
	for _, o := range got {
		if (o.Err != nil) != (o.Code == OutcomeFailed) {
			t.Errorf("%s: code %s with error %v", o.TaskID, o.Code, o.Err)
		}
	}
	info, err := in.GetTaskInfo(q, "dead")
	if err != nil {
		t.Fatal(err)
	}
	if info.State != asynq.TaskStatePending || info.MaxRetry != 1000 || info.Timeout != 5*time.Minute || info.Retention != 24*time.Hour || info.Type != testType {
		t.Errorf("requeued task: state %s max retry %d timeout %v retention %v type %s", info.State, info.MaxRetry, info.Timeout, info.Retention, info.Type)
	}
	var p struct {
		SubsId, PhoneNoA string
		Meta             map[string]any `json:"_meta"`
	}
	if err := json.Unmarshal(info.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.PhoneNoA != "13812345678" || p.SubsId != "1000000768790001" {
		t.Errorf("payload fields changed: %s", info.Payload)
	}
	if p.Meta["requeues"] != 1.0 || p.Meta["version"] != 5.0 || p.Meta["source"] != "requeue" ||
		p.Meta["requeued_at"] != "2030-01-06T07:08:09Z" || p.Meta["enqueued_at"] != "2030-01-01T00:00:00Z" {
		t.Errorf("_meta = %v", p.Meta)
	}
	if hasRecord(t, s, "dead") || hasRecord(t, s, "trimmed") {
		t.Error("requeued records were kept")
	}
	if !hasRecord(t, s, "live") || !hasRecord(t, s, "bad") {
		t.Error("records of jobs not requeued were deleted")
	}
	if st := state(t, in, q, "live"); st != "pending" {
		t.Errorf("live task is %s", st)
	}

	// Dying and being requeued again counts on.
	if err := in.ArchiveTask(q, "dead"); err != nil {
		t.Fatal(err)
	}
	r := Record{TaskID: "dead", Queue: q, Type: testType, Code: "isv.BIND_CONFLICT"}
	r.SetPayload(info.Payload)
	if err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, err := rq.Requeue(ctx, Filter{Codes: []string{"isv.BIND_CONFLICT"}, Queue: q, Limit: 1}, false); err != nil || len(got) != 1 || got[0].Code != OutcomeRequeued {
		t.Fatalf("second requeue: %v %v", got, err)
	}
	info, _ = in.GetTaskInfo(q, "dead")
	if err := json.Unmarshal(info.Payload, &p); err != nil || p.Meta["requeues"] != 2.0 || p.Meta["version"] != 5.0 {
		t.Errorf("second requeue _meta = %v (%v)", p.Meta, err)
	}
}

func TestPurge(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	c, in, q := newQueue(t, s)
	rq := &Requeuer{Store: s, Inspector: in, Client: c}
	deadJob(t, s, c, in, q, "a", payload)
	deadJob(t, s, c, in, q, "b", payload)
	enqueue(t, c, q, "live", payload)
	putRecord(t, s, q, "live", payload)

	got, err := rq.Purge(ctx, Filter{}, true)
	if err != nil || len(got) != 3 || got[0].Code != OutcomeWouldPurge {
		t.Fatalf("dry run: %v %v", got, err)
	}
	if state(t, in, q, "a") != "archived" || !hasRecord(t, s, "a") {
		t.Fatal("dry run changed something")
	}
	got, err = rq.Purge(ctx, Filter{}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range got {
		if o.Code != OutcomePurged || o.Err != nil {
			t.Errorf("%s: %s %v", o.TaskID, o.Code, o.Err)
		}
	}
	for _, id := range []string{"a", "b"} {
		if st := state(t, in, q, id); st != "gone" {
			t.Errorf("%s: task is %s", id, st)
		}
	}
	if st := state(t, in, q, "live"); st != "pending" {
		t.Errorf("purge touched a live task: %s", st)
	}
	if n, _ := s.Count(ctx); n != 0 {
		t.Errorf("%d records left", n)
	}
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	c, in, q := newQueue(t, s)
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	sw := &Sweeper{Store: s, Inspector: in, Queues: []string{q, q + "-none"}, Now: func() time.Time { return now }}

	deadJob(t, s, c, in, q, "recorded", payload)
	enqueue(t, c, q, "clicked", `{"SubsId":"42","OperateType":"updateNoB","_meta":{"version":8,"batch":"B","line":3}}`)
	if err := in.ArchiveTask(q, "clicked"); err != nil {
		t.Fatal(err)
	}
	enqueue(t, c, q, "garbage", "\x00not json")
	if err := in.ArchiveTask(q, "garbage"); err != nil {
		t.Fatal(err)
	}

	n, err := sw.Sweep(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Sweep wrote %d, %v; want 2", n, err)
	}
	r, ok, err := s.Get(ctx, "clicked")
	if err != nil || !ok {
		t.Fatalf("no record: %v", err)
	}
	if r.Code != CodeArchived || r.Reason != ReasonOperator || r.Queue != q || r.Type != testType ||
		!r.DiedAt.Equal(now) || r.SubsId != "42" || r.OperateType != "updateNoB" || r.Version != 8 || r.Batch != "B" || r.Line != 3 {
		t.Errorf("swept record: %+v", r)
	}
	if r, _, _ := s.Get(ctx, "garbage"); string(r.Payload) != "\x00not json" {
		t.Errorf("malformed payload record: %+v", r)
	}
	if r, _, _ := s.Get(ctx, "recorded"); r.Code != "isv.BIND_CONFLICT" {
		t.Errorf("sweep overwrote a record: %+v", r)
	}
	if n, err := sw.Sweep(ctx); err != nil || n != 0 {
		t.Errorf("second Sweep wrote %d, %v; want 0", n, err)
	}
}

func TestSweepRecordLeaseExpired(t *testing.T) {
	sw := &Sweeper{}
	failed := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := sw.record(&asynq.TaskInfo{
		ID: "x", Queue: "q", Type: testType, Retried: 4,
		LastErr: "asynq: task lease expired", LastFailedAt: failed,
		Payload: []byte(`{"SubsId":"1","PhoneNoA":"13812345678"}`),
	})
	if r.Code != CodeLeaseExpired || r.Reason != ReasonLeaseExpired || r.Attempts != 4 || !r.DiedAt.Equal(failed) || r.SubsId != "1" {
		t.Errorf("record: %+v", r)
	}
	r = sw.record(&asynq.TaskInfo{ID: "y", LastErr: "call 13812345678 failed", MaxRetry: 25})
	if r.Code != CodeArchived || r.Message != "call 138****5678 failed" || r.DiedAt.IsZero() {
		t.Errorf("record: %+v", r)
	}
}

func TestSweepPages(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	c, in, q := newQueue(t, s)
	const n = 1234
	for i := range n {
		enqueue(t, c, q, fmt.Sprintf("t%04d", i), payload)
	}
	if _, err := in.ArchiveAllPendingTasks(q); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 10 {
		putRecord(t, s, q, fmt.Sprintf("t%04d", i), payload)
	}
	sw := &Sweeper{Store: s, Inspector: in, Queues: []string{q}}
	got, err := sw.Sweep(ctx)
	if want := n - (n+9)/10; err != nil || got != want {
		t.Fatalf("Sweep wrote %d, %v; want %d", got, err, want)
	}
	if count, _ := s.Count(ctx); count != n {
		t.Errorf("%d records, want %d", count, n)
	}
}

// TestRequeueKeepsToTheVersionWindow: a job enqueued more than
// tasks.VersionWindow ago is not requeued with its version (the fences may
// have forgotten newer ones), and its record stays; a plain-asynq job's
// first requeue writes the earliest its version can have been taken.
func TestRequeueKeepsToTheVersionWindow(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	c, in, q := newQueue(t, s)
	enqueued := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // as in payload
	now := enqueued.Add(tasks.VersionWindow + time.Hour)
	rq := &Requeuer{Store: s, Inspector: in, Client: c, Now: func() time.Time { return now }}
	deadJob(t, s, c, in, q, "old", payload)
	got, err := rq.Requeue(ctx, Filter{}, false)
	if err != nil || len(got) != 1 || got[0].Code != OutcomeTooOld {
		t.Fatalf("outcomes %+v, %v; want too old", got, err)
	}
	if !hasRecord(t, s, "old") || state(t, in, q, "old") != "archived" {
		t.Error("the old job's record or archived task is gone")
	}

	rq.Now = func() time.Time { return enqueued.Add(tasks.VersionWindow - time.Hour) }
	if got, err := rq.Requeue(ctx, Filter{}, false); err != nil || len(got) != 1 || got[0].Code != OutcomeRequeued {
		t.Fatalf("within the window: %+v, %v", got, err)
	}

	// A plain job: no enqueued_at. Died at t0; its version was taken at
	// most tasks.MaxJobAge before.
	plain := `{"SubsId":"1000000768790001","PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":"13812345678","PoolKey":"FC1"}`
	deadJob(t, s, c, in, q, "plain", plain)
	rq.Now = func() time.Time { return t0.Add(tasks.VersionWindow - tasks.MaxJobAge + time.Hour) }
	if got, _ := rq.Requeue(ctx, Filter{}, false); len(got) != 1 || got[0].Code != OutcomeTooOld {
		t.Fatalf("plain job past the window from its earliest version time: %+v", got)
	}
	rq.Now = func() time.Time { return t0.Add(time.Hour) }
	if got, _ := rq.Requeue(ctx, Filter{}, false); len(got) != 1 || got[0].Code != OutcomeRequeued {
		t.Fatalf("plain job: %+v", got)
	}
	info, err := in.GetTaskInfo(q, "plain")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Meta struct {
			EnqueuedAt time.Time `json:"enqueued_at"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(info.Payload, &p); err != nil || !p.Meta.EnqueuedAt.Equal(t0.Add(-tasks.MaxJobAge)) {
		t.Errorf("plain job's enqueued_at %v (%v), want %v", p.Meta.EnqueuedAt, err, t0.Add(-tasks.MaxJobAge))
	}
}

// TestRequeueFollowsTheQueuesSplit: a job that died in a shard of an
// earlier split of its queue is requeued to its binding's shard of the
// split in force, which workers serve; one that died in a shard of the
// split in force, or in a queue merely named like a shard, goes back where
// it was.
func TestRequeueFollowsTheQueuesSplit(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	c, in, q := newQueue(t, s)
	now := time.Date(2030, 1, 6, 7, 8, 9, 0, time.UTC)
	rq := &Requeuer{Store: s, Inspector: in, Client: c, Now: func() time.Time { return now }}
	if _, err := tasks.SetShards(ctx, s.Redis, s.Prefix, q, 0, 2); err != nil {
		t.Fatal(err)
	}
	var u tasks.Update
	if err := json.Unmarshal([]byte(payload), &u); err != nil {
		t.Fatal(err)
	}
	cur := tasks.Layout{Queue: q, Shards: 2}
	old := tasks.ShardName(q, 2, 3) // not a shard of the 2-way split
	other := s.Prefix + "-plain.7"  // named like a shard of a queue not split
	for _, name := range []string{old, cur.Names()[1], other} {
		t.Cleanup(func() { _ = in.DeleteQueue(name, true) })
	}
	deadJob(t, s, c, in, old, "from-old", payload)
	deadJob(t, s, c, in, cur.Names()[1], "from-cur", payload)
	deadJob(t, s, c, in, other, "from-other", payload)

	got, err := rq.Requeue(ctx, Filter{}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range got {
		if o.Code != OutcomeRequeued {
			t.Fatalf("%s: %s %v", o.TaskID, o.Code, o.Err)
		}
	}
	for id, q := range map[string]string{"from-old": cur.QueueFor(u.SubsId), "from-cur": cur.Names()[1], "from-other": other} {
		if st := state(t, in, q, id); st != "pending" {
			t.Errorf("%s in %s: %s, want pending", id, q, st)
		}
	}
	if st := state(t, in, old, "from-old"); st != "gone" {
		t.Errorf("from-old left in %s: %s", old, st)
	}

	// Merged back into one queue: a job that died in a shard goes to the
	// queue itself.
	if _, err := tasks.SetShards(ctx, s.Redis, s.Prefix, q, 2, 1); err != nil {
		t.Fatal(err)
	}
	shard := cur.Names()[2]
	t.Cleanup(func() { _ = in.DeleteQueue(shard, true) })
	deadJob(t, s, c, in, shard, "after-merge", payload)
	if got, err := rq.Requeue(ctx, Filter{}, false); err != nil || outcomes(got)["after-merge"] != OutcomeRequeued {
		t.Fatalf("after the merge: %+v %v", got, err)
	}
	if st := state(t, in, q, "after-merge"); st != "pending" {
		t.Errorf("after-merge in %s: %s, want pending", q, st)
	}
}

// A job that died, then ran again outside a requeue (from the web UI's
// archive) and completed, is not dead: a requeue drops its record, which no
// longer stands (a dry run only says so), rather than keeping it as live.
func TestRequeueDropsTheRecordOfATaskThatRanAgain(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	c, in, q := newQueue(t, s)
	if _, err := c.Enqueue(asynq.NewTask(testType, []byte(payload)), asynq.Queue(q), asynq.TaskID("x"), asynq.Retention(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := in.ArchiveTask(q, "x"); err != nil {
		t.Fatal(err)
	}
	putRecord(t, s, q, "x", payload)
	runAgain(t, s, in, q, "x", 5)
	rq := &Requeuer{Store: s, Inspector: in, Client: c}
	out, err := rq.Requeue(ctx, Filter{}, true)
	if err != nil || outcomes(out)["x"] != OutcomeRanAgain || !hasRecord(t, s, "x") {
		t.Fatalf("dry run: %+v (err %v), record kept %v: want %q and the record kept", out, err, hasRecord(t, s, "x"), OutcomeRanAgain)
	}
	out, err = rq.Requeue(ctx, Filter{}, false)
	if err != nil || outcomes(out)["x"] != OutcomeRanAgain {
		t.Fatalf("requeue: %+v (err %v), want %q", out, err, OutcomeRanAgain)
	}
	if hasRecord(t, s, "x") {
		t.Error("the record of a task that completed still stands")
	}
	if st := state(t, in, q, "x"); st != "completed" {
		t.Errorf("task is %s, want completed (untouched)", st)
	}
}

// runAgain runs the archived task id again, as the web UI's Run does, and
// waits until it completed (its job ended otherwise than dead) with a
// result of version (the worker's result reports the job's version).
func runAgain(t *testing.T, s *Store, in *asynq.Inspector, q, id string, version int64) {
	t.Helper()
	if err := in.RunTask(q, id); err != nil {
		t.Fatal(err)
	}
	complete(t, s, in, q, id, version)
}

// complete runs the waiting task id, which completes with a result of
// version, and waits until asynq holds it completed.
func complete(t *testing.T, s *Store, in *asynq.Inspector, q, id string, version int64) {
	t.Helper()
	srv := asynq.NewServerFromRedisClient(s.Redis, asynq.Config{Queues: map[string]int{q: 1}, Concurrency: 1,
		LogLevel: asynq.FatalLevel, TaskCheckInterval: 20 * time.Millisecond})
	err := srv.Start(asynq.HandlerFunc(func(_ context.Context, task *asynq.Task) error {
		_, err := task.ResultWriter().Write(fmt.Appendf(nil, `{"outcome":"applied","version":%d}`, version))
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	for deadline := time.Now().Add(10 * time.Second); state(t, in, q, id) != "completed"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the task did not complete")
		}
	}
}

// A later job given the dead task's id once asynq forgot the dead task (an
// idempotency key used again) is not the dead job run again: its record
// stands, for the requeue, the sweep and the worker alike.
func TestARecordStandsWhenItsTaskIdIsUsedAgain(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	c, in, q := newQueue(t, s)
	putRecord(t, s, q, "x", payload) // version 5; its archived task is gone
	later := strings.Replace(payload, `"version":5`, `"version":9`, 1)
	if _, err := c.Enqueue(asynq.NewTask(testType, []byte(later)), asynq.Queue(q), asynq.TaskID("x"), asynq.Retention(time.Hour)); err != nil {
		t.Fatal(err)
	}
	complete(t, s, in, q, "x", 9)
	sw := &Sweeper{Store: s, Inspector: in, Queues: []string{q}}
	if _, err := sw.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasRecord(t, s, "x") {
		t.Fatal("the sweep deleted the record of a dead job for a later job's task")
	}
	if deleted, err := s.DeleteOf(ctx, "x", 9, []byte(later)); err != nil || deleted || !hasRecord(t, s, "x") {
		t.Fatalf("DeleteOf by the later job: deleted %v (err %v): want the record kept", deleted, err)
	}
	rq := &Requeuer{Store: s, Inspector: in, Client: c}
	out, err := rq.Requeue(ctx, Filter{}, false)
	if err != nil || outcomes(out)["x"] != OutcomeLive || !hasRecord(t, s, "x") {
		t.Fatalf("requeue: %+v (err %v): want %q and the record kept", out, err, OutcomeLive)
	}
	if deleted, err := s.DeleteOf(ctx, "x", 5, []byte(payload)); err != nil || !deleted || hasRecord(t, s, "x") {
		t.Fatalf("DeleteOf by the dead job itself: deleted %v (err %v): want the record gone", deleted, err)
	}
}
