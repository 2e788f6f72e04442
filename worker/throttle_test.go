package worker_test

import (
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/worker"
)

// TestThrottlingOnOneBindingKeepsTheSharedRate: isv.FLOW_LIMIT answers for
// one SubsId back off that binding alone; the fleet's shared rate stays at
// DYPLS_QPS. The same answers spread over several bindings cut it.
func TestThrottlingOnOneBindingKeepsTheSharedRate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) { c.QPS = 200; c.MaxAttempts = 1 })
	one := seed(1, "updateOutId")
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", SubsId: one.SubsId, Code: "isv.FLOW_LIMIT", Count: 2})
	e.start()
	rate := func() float64 {
		v, err := e.rdb.HGet(e.ctx, e.ns+":limit:UpdateSubscription", "rate").Float64()
		if err != nil {
			return 200 // never cut
		}
		return v
	}
	one.OutId = "one"
	r := result(t, e.waitState(e.enqueue(one), 20*time.Second, asynq.TaskStateCompleted))
	if r.Outcome != worker.OutcomeApplied {
		t.Fatalf("result %+v", r)
	}
	if n := e.sim.Stats().Calls["UpdateSubscription"]["isv.FLOW_LIMIT"]; n != 2 {
		t.Fatalf("%d throttled calls, want 2", n)
	}
	if got := rate(); got != 200 {
		t.Fatalf("two throttling answers for one binding cut the shared rate to %.1f", got)
	}
	// Spread over four bindings, throttling is the account's: the rate goes down.
	var ids []string
	for i := 2; i <= 5; i++ {
		u := outIDUpdate(i, "spread")
		e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", SubsId: u.SubsId, Code: "isv.FLOW_LIMIT", Count: 1})
		ids = append(ids, e.enqueue(u))
	}
	for _, id := range ids {
		if r := result(t, e.waitState(id, 20*time.Second, asynq.TaskStateCompleted)); r.Outcome != worker.OutcomeApplied {
			t.Fatalf("result %+v", r)
		}
	}
	if got := rate(); got >= 200 {
		t.Fatalf("throttling spread over 4 bindings left the shared rate at %.1f", got)
	}
}

// TestRetryForOutlastsAnOutage: with a time budget (JOB_RETRY_FOR), a job
// goes on retrying through an outage longer than JOB_MAX_ATTEMPTS
// attempts would last, and is applied when it ends.
func TestRetryForOutlastsAnOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) {
		c.MaxAttempts = 2
		c.RetryFor = 20 * time.Second
		c.BackoffBase = 50 * time.Millisecond
		c.BackoffMax = 100 * time.Millisecond
	})
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", Kind: dyplsim.FaultGateway, Status: 503, Code: "ServiceUnavailable"})
	e.start()
	u := outIDUpdate(7, "outage")
	id := e.enqueue(u)
	eventually(t, 10*time.Second, "five failed attempts", func() bool {
		return e.sim.Stats().Calls["UpdateSubscription"]["ServiceUnavailable"] >= 5
	})
	e.sim.SetFaults(nil)
	r := result(t, e.waitState(id, 20*time.Second, asynq.TaskStateCompleted, asynq.TaskStateArchived))
	if r.Outcome != worker.OutcomeApplied || r.Attempts < 5 {
		t.Fatalf("result %+v, want applied after at least 5 attempts", r)
	}
}
