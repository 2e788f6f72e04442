package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/worker"
)

// TestWrongSecretIsNotReadyBeforeAnyJob: the worker checks its credentials
// at start with a signed query; a wrong secret halts it and keeps it not
// ready, with a reason naming the setting to check, before any job comes.
func TestWrongSecretIsNotReadyBeforeAnyJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	api, err := dypls.New(dypls.Config{Endpoint: "http://" + e.simAddr, AccessKeyID: dyplsim.DefaultAccessKeyID,
		AccessKeySecret: "not-the-secret", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	e.api = api
	w := e.start()
	eventually(t, 10*time.Second, "the worker to halt", func() bool { return w.Halt().Halted })
	err = w.Ready(context.Background())
	var nr *worker.NotReadyError
	if !errors.As(err, &nr) {
		t.Fatalf("Ready = %v, want not ready", err)
	}
	if r := nr.PublicReason(); !strings.Contains(r, "SignatureDoesNotMatch") || !strings.Contains(r, "ALIBABA_CLOUD_ACCESS_KEY_SECRET") || len(r) > 200 {
		t.Fatalf("reason %q: want the code and the setting to check, short", r)
	}
	if !strings.Contains(err.Error(), "the API said") {
		t.Fatalf("detail %q lacks the API's message", err)
	}
	if n := e.sim.Stats().Calls["UpdateSubscription"]; len(n) != 0 {
		t.Fatalf("update calls %v: no job was queued", n)
	}
	hs, err := (&admin.Halts{Redis: e.rdb, Prefix: e.ns}).List(e.ctx)
	eventually(t, 5*time.Second, "the halt in Redis", func() bool {
		hs, err = (&admin.Halts{Redis: e.rdb, Prefix: e.ns}).List(e.ctx)
		return err == nil && len(hs) == 1
	})
	if !strings.Contains(hs[0].Hint, "ALIBABA_CLOUD_ACCESS_KEY_SECRET") {
		t.Fatalf("halt %+v lacks the hint", hs[0])
	}
	// Every probe is logged, with its result and the next probe time.
	eventually(t, 5*time.Second, "a logged probe", func() bool {
		return strings.Contains(e.logs.String(), `"probe":"QuerySubscriptionDetail","result":"SignatureDoesNotMatch"`) &&
			strings.Contains(e.logs.String(), `"next_probe"`)
	})
}

// TestReadyOnceTheCredentialsWork: with the right secret and no job, the
// worker becomes ready through its credential check.
func TestReadyOnceTheCredentialsWork(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	w := e.start()
	eventually(t, 10*time.Second, "the worker to be ready", func() bool { return w.Ready(context.Background()) == nil })
	if len(e.sim.Stats().Calls["QuerySubscriptionDetail"]) == 0 {
		t.Fatalf("no credential check: %+v", e.sim.Stats().Calls)
	}
}

// haltWithLongProbe halts a worker by an account-wide code on its jobs
// with a probe a minute away, and returns the worker and the jobs.
func haltWithLongProbe(t *testing.T, e *env) (*worker.Worker, []string) {
	t.Helper()
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", Kind: "code", Code: "isv.ACCOUNT_ABNORMAL", Message: "account in arrears"})
	w := e.start()
	var ids []string
	for i := 1; i <= 3; i++ {
		u := outIDUpdate(i, "probe-now")
		ids = append(ids, e.enqueue(u))
	}
	eventually(t, 10*time.Second, "the worker to halt", func() bool { return w.Halt().Halted })
	eventually(t, 10*time.Second, "the jobs to wait in the retry set", func() bool {
		for _, id := range ids {
			if info, err := e.insp.GetTaskInfo(e.queue, id); err != nil || info.State != asynq.TaskStateRetry {
				return false
			}
		}
		return true
	})
	return w, ids
}

// TestProbeNow: once the cause is fixed, an operator's probe request makes
// a halted worker probe at once instead of at its next probe time.
func TestProbeNow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) {
		c.HaltProbeMin, c.HaltProbeMax, c.HaltWait = time.Minute, 5*time.Minute, 200*time.Millisecond
	})
	w, ids := haltWithLongProbe(t, e)
	e.sim.SetFaults(nil)
	if err := (&admin.Halts{Redis: e.rdb, Prefix: e.ns}).RequestProbe(e.ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if r := result(t, e.waitState(id, 10*time.Second, asynq.TaskStateCompleted)); r.Outcome != worker.OutcomeApplied {
			t.Fatalf("result %+v", r)
		}
	}
	if w.Halt().Halted {
		t.Fatal("still halted")
	}
}

// TestRestartedWorkerStartsFresh: jobs put off by a halted worker that was
// stopped run as soon as a new worker starts, not at the old probe time.
func TestRestartedWorkerStartsFresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) {
		c.HaltProbeMin, c.HaltProbeMax, c.HaltWait = time.Minute, 5*time.Minute, 200*time.Millisecond
	})
	w, ids := haltWithLongProbe(t, e)
	w.Shutdown()
	e.sim.SetFaults(nil)
	e.cfg.WorkerID = e.ns + "-w2"
	e.start()
	for _, id := range ids {
		if r := result(t, e.waitState(id, 10*time.Second, asynq.TaskStateCompleted)); r.Outcome != worker.OutcomeApplied {
			t.Fatalf("result %+v", r)
		}
	}
}
