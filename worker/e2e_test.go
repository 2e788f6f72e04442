package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

func TestApplied(t *testing.T) {
	t.Parallel()
	e := newStartedEnv(t)
	u := seed(1, "updateNoA")
	u.PhoneNoA = "13812340001"
	id := e.enqueue(u)
	info := e.waitState(id, 10*time.Second, asynq.TaskStateCompleted)
	r := result(t, info)
	if r.Outcome != worker.OutcomeApplied || r.Code != "OK" || r.RequestID == "" || r.Attempts != 1 || r.Version == 0 {
		t.Fatalf("result %+v", r)
	}
	b, _ := e.sim.Binding(u.SubsId)
	if b.PhoneNoA != u.PhoneNoA {
		t.Fatalf("simulator holds A %s, want %s", b.PhoneNoA, u.PhoneNoA)
	}
	if !strings.Contains(e.logs.String(), `"outcome":"applied"`) || !strings.Contains(e.logs.String(), r.RequestID) {
		t.Fatalf("no outcome log line with the RequestId:\n%s", e.logs.String())
	}
}

func TestThrottledThenApplied(t *testing.T) {
	t.Parallel()
	// A quota of 5 calls/s with a burst of 1 against 15 jobs at once.
	e := newEnv(t, dyplsim.Config{QPS: 5, Burst: 1}, func(c *worker.Config) { c.MaxAttempts = 1 })
	e.start()
	var ids []string
	for i := 1; i <= 15; i++ {
		u := outIDUpdate(i, "order-1")
		ids = append(ids, e.enqueue(u))
	}
	for _, id := range ids {
		r := result(t, e.waitState(id, 30*time.Second, asynq.TaskStateCompleted))
		// MaxAttempts is 1: a counted attempt would have killed the job.
		if r.Outcome != worker.OutcomeApplied || r.Attempts != 1 {
			t.Fatalf("result %+v", r)
		}
	}
	if n := e.sim.Stats().Calls["UpdateSubscription"]["Throttling.User"]; n == 0 {
		t.Fatalf("the simulator throttled nothing: %+v", e.sim.Stats())
	}
}

func TestTransientThenApplied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	u := seed(2, "updateNoB")
	u.PhoneNoB = "13912340002"
	e.sim.AddFault(dyplsim.FaultRule{SubsId: u.SubsId, Kind: "code", Code: "isp.SYSTEM_ERROR", Count: 2})
	e.start()
	id := e.enqueue(u)
	r := result(t, e.waitState(id, 10*time.Second, asynq.TaskStateCompleted))
	if r.Outcome != worker.OutcomeApplied || r.Attempts != 3 {
		t.Fatalf("result %+v, want applied on attempt 3", r)
	}
	if b, _ := e.sim.Binding(u.SubsId); b.PhoneNoB != u.PhoneNoB {
		t.Fatalf("B not applied: %s", b.PhoneNoB)
	}
}

func TestTransientUntilAttemptsRunOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) { c.MaxAttempts = 3 })
	u := outIDUpdate(3, "x")
	e.sim.AddFault(dyplsim.FaultRule{SubsId: u.SubsId, Kind: "code", Code: "isp.SYSTEM_ERROR"})
	e.start()
	id := e.enqueue(u)
	e.waitState(id, 10*time.Second, asynq.TaskStateArchived)
	rec := e.deadRecord(id)
	if rec.Code != "isp.SYSTEM_ERROR" || rec.Attempts != 3 || rec.Reason != "attempts exhausted" || rec.RequestID == "" {
		t.Fatalf("record %+v", rec)
	}
	if rec.FirstFailure.After(rec.LastFailure) || rec.FirstFailure.Equal(rec.LastFailure) {
		t.Fatalf("first failure %v should precede last %v", rec.FirstFailure, rec.LastFailure)
	}
	if n := e.sim.Stats().Calls["UpdateSubscription"]["isp.SYSTEM_ERROR"]; n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
}

func TestDeadAtOnceOnBindConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	// Binding 5 and a second binding on the same X: giving binding 5 the
	// A number the other binding holds with that X conflicts.
	b5 := dyplsim.SeedBinding(5)
	other := e.sim.PutBinding(dyplsim.Binding{PoolKey: b5.PoolKey, PhoneNoX: b5.PhoneNoX, PhoneNoA: "13855550000", PhoneNoB: "13955550000",
		ExpireDate: time.Now().Add(48 * time.Hour).In(time.FixedZone("CST", 8*3600)).Format("2006-01-02 15:04:05"), Status: 1})
	e.start()
	u := seed(5, "updateNoA")
	u.PhoneNoA = other.PhoneNoA
	id := e.enqueue(u)
	info := e.waitState(id, 10*time.Second, asynq.TaskStateArchived)
	rec := e.deadRecord(id)
	if rec.Code != "isv.BIND_CONFLICT" || rec.RequestID == "" || rec.Attempts != 1 || rec.Reason != "permanent" || rec.Class != "permanent" {
		t.Fatalf("record %+v", rec)
	}
	// The task's result says dead too, over any result an earlier run may
	// have left, so that the sweep never takes it for a job that ended.
	if r := result(t, info); r.Outcome != worker.OutcomeDead || r.Code != "isv.BIND_CONFLICT" || strings.Contains(r.Note, "13855550000") {
		t.Fatalf("result %+v, want dead with its code and a masked note", r)
	}
	if strings.Contains(rec.Message, "13855550000") {
		t.Fatalf("record message holds a full number: %q", rec.Message)
	}
	if n := e.sim.Stats().Calls["UpdateSubscription"]["isv.BIND_CONFLICT"]; n != 1 {
		t.Fatalf("%d calls, want exactly 1 (no retry)", n)
	}
}

func TestHaltAndResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) { c.MaxAttempts = 1 })
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", Kind: "code", Code: "isv.ACCOUNT_ABNORMAL", Message: "account in arrears"})
	w := e.start()
	var ids []string
	for i := 1; i <= 5; i++ {
		u := outIDUpdate(i, "halt-test")
		ids = append(ids, e.enqueue(u))
	}
	eventually(t, 10*time.Second, "the worker to halt", func() bool { return w.Halt().Halted })
	err := w.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "isv.ACCOUNT_ABNORMAL") {
		t.Fatalf("Ready = %v, want the halting code", err)
	}
	// While halted, probes back off: far fewer calls than jobs × time.
	time.Sleep(1500 * time.Millisecond)
	halted := e.sim.Stats().Calls["UpdateSubscription"]["isv.ACCOUNT_ABNORMAL"]
	if halted > 8 {
		t.Fatalf("%d calls while halted: the worker did not stop calling", halted)
	}
	for _, id := range ids {
		info, err := e.insp.GetTaskInfo(e.queue, id)
		if err != nil {
			t.Fatal(err)
		}
		if info.State == asynq.TaskStateArchived || info.State == asynq.TaskStateCompleted {
			t.Fatalf("task %s is %v during the halt", id, info.State)
		}
	}
	if n, _ := e.dlq.Count(e.ctx); n != 0 {
		t.Fatalf("%d dead letters during a halt", n)
	}
	e.sim.SetFaults(nil)
	for _, id := range ids {
		r := result(t, e.waitState(id, 15*time.Second, asynq.TaskStateCompleted))
		if r.Outcome != worker.OutcomeApplied || r.Attempts != 1 {
			t.Fatalf("after the halt: %+v", r)
		}
	}
	eventually(t, 5*time.Second, "the worker to be ready", func() bool { return w.Ready(context.Background()) == nil })
}

func TestThrottledOnLastAttemptIsNotDead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) { c.MaxAttempts = 2 })
	u := outIDUpdate(6, "last")
	// One counted failure, then throttling, then success.
	e.sim.AddFault(dyplsim.FaultRule{SubsId: u.SubsId, Kind: "code", Code: "isp.SYSTEM_ERROR", Count: 1})
	e.sim.AddFault(dyplsim.FaultRule{SubsId: u.SubsId, Kind: "code", Code: "isv.FLOW_LIMIT", Count: 3})
	e.start()
	id := e.enqueue(u)
	r := result(t, e.waitState(id, 15*time.Second, asynq.TaskStateCompleted))
	if r.Outcome != worker.OutcomeApplied || r.Attempts != 2 {
		t.Fatalf("result %+v", r)
	}
	if n := e.sim.Stats().Calls["UpdateSubscription"]["isv.FLOW_LIMIT"]; n != 3 {
		t.Fatalf("%d throttled answers, want 3", n)
	}
}

func TestMalformedPayloadIsDeadAndWorkerGoesOn(t *testing.T) {
	t.Parallel()
	e := newStartedEnv(t)
	client := asynq.NewClientFromRedisClient(e.rdb)
	bad := []struct{ typ, payload string }{
		{tasks.TypeUpdateSubscription, `not json at all 13812345678`},
		{tasks.TypeUpdateSubscription, `{"SubsId":"1"}`},
		{"some:other_type", `{}`},
	}
	var badIDs []string
	for _, b := range bad {
		info, err := client.Enqueue(asynq.NewTask(b.typ, []byte(b.payload)), asynq.Queue(e.queue), asynq.MaxRetry(5))
		if err != nil {
			t.Fatal(err)
		}
		badIDs = append(badIDs, info.ID)
	}
	u := outIDUpdate(7, "after-bad")
	good := e.enqueue(u)
	for _, id := range badIDs {
		e.waitState(id, 10*time.Second, asynq.TaskStateArchived)
		rec := e.deadRecord(id)
		if rec.Reason != "malformed payload" || (rec.Code != worker.CodeMalformed && rec.Code != worker.CodeUnknownType) {
			t.Fatalf("record %+v", rec)
		}
		if strings.Contains(rec.Message, "13812345678") {
			t.Fatalf("message holds a number: %q", rec.Message)
		}
	}
	if r := result(t, e.waitState(good, 10*time.Second, asynq.TaskStateCompleted)); r.Outcome != worker.OutcomeApplied {
		t.Fatalf("good job: %+v", r)
	}
}

func TestShutdownWithCallsInFlightLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{Latency: 300 * time.Millisecond}, func(c *worker.Config) {
		c.Concurrency = 8
		c.MaxAttempts = 1
	})
	w := e.start()
	var ids []string
	for i := 1; i <= 20; i++ {
		u := outIDUpdate(i, "shutdown")
		ids = append(ids, e.enqueue(u))
	}
	// Wait until calls are in flight, then shut down as SIGTERM does.
	eventually(t, 5*time.Second, "calls in flight", func() bool {
		q, err := e.insp.GetQueueInfo(e.queue)
		return err == nil && q.Active > 0
	})
	w.Shutdown()
	// A second worker finishes the rest.
	e.cfg.WorkerID = e.ns + "-w2"
	e.start()
	for _, id := range ids {
		r := result(t, e.waitState(id, 20*time.Second, asynq.TaskStateCompleted))
		if r.Outcome != worker.OutcomeApplied {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	if n, _ := e.dlq.Count(e.ctx); n != 0 {
		t.Fatalf("%d dead letters after a graceful shutdown", n)
	}
}

func TestMaxAge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) { c.MaxAge = 300 * time.Millisecond; c.MaxAttempts = 100 })
	u := outIDUpdate(8, "old")
	e.sim.AddFault(dyplsim.FaultRule{SubsId: u.SubsId, Kind: "code", Code: "isv.FLOW_LIMIT"})
	e.start()
	id := e.enqueue(u)
	e.waitState(id, 10*time.Second, asynq.TaskStateArchived)
	rec := e.deadRecord(id)
	if rec.Reason != "max age passed" || rec.Code != "isv.FLOW_LIMIT" {
		t.Fatalf("record %+v", rec)
	}
}
