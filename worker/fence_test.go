package worker_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// sent is one enqueued update and the value it sets.
type sent struct {
	id, subs, op, value string
}

func valueOf(u tasks.Update) string {
	if u.OperateType == "updateNoB" {
		return u.PhoneNoB
	}
	return u.OutId
}

// enqueueRounds enqueues, rounds times, an updateOutId and an updateNoB for
// each of the first bindings seeded bindings, every one with a value of its
// own (OutId tag+round, PhoneNoB prefix+a 4-digit counter).
func enqueueRounds(e *env, rounds, bindings int, tag, prefix string) []sent {
	var jobs []sent
	n := 0
	for round := 0; round < rounds; round++ {
		for b := 1; b <= bindings; b++ {
			for _, op := range []string{"updateOutId", "updateNoB"} {
				n++
				u := seed(b, op)
				u.OutId = fmt.Sprintf("%s%d-b%d", tag, round, b)
				u.PhoneNoB = fmt.Sprintf("%s%04d", prefix, n)
				jobs = append(jobs, sent{e.enqueue(u), u.SubsId, op, valueOf(u)})
			}
		}
	}
	return jobs
}

// violations waits until every job has ended, then compares each binding
// field in the simulator with the value of its highest-version applied job.
func violations(t *testing.T, e *env, jobs []sent, timeout time.Duration) (bad []string, outcomes map[string]int) {
	t.Helper()
	type best struct {
		version int64
		value   string
	}
	top := map[[2]string]best{}
	outcomes = map[string]int{}
	for _, j := range jobs {
		info := e.waitState(j.id, timeout, asynq.TaskStateCompleted, asynq.TaskStateArchived)
		if info.State == asynq.TaskStateArchived {
			outcomes["dead"]++
			continue
		}
		r := result(t, info)
		outcomes[r.Outcome]++
		if r.Outcome != worker.OutcomeApplied {
			continue
		}
		k := [2]string{j.subs, j.op}
		if r.Version > top[k].version {
			top[k] = best{r.Version, j.value}
		}
	}
	for k, b := range top {
		bind, _ := e.sim.Binding(k[0])
		got := bind.OutId
		if k[1] == "updateNoB" {
			got = bind.PhoneNoB
		}
		if got != b.value {
			bad = append(bad, fmt.Sprintf("%s %s holds %q, but the newest applied job (version %d) set %q", k[0], k[1], got, b.version, b.value))
		}
	}
	sort.Strings(bad)
	return bad, outcomes
}

// TestNewestWinsUnderChaos: many updates of a few binding fields, two
// workers, a simulator that throttles, fails at random, drops connections
// after applying and answers slowly. Every job ends and every field holds
// the value of its highest-version applied job.
func TestNewestWinsUnderChaos(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{QPS: 150, Burst: 5, ThrottleCode: "isv.FLOW_LIMIT", Latency: 2 * time.Millisecond, Jitter: 8 * time.Millisecond},
		func(c *worker.Config) { c.MaxAttempts = 25; c.QPS = 1000 })
	e.sim.SetFaults([]dyplsim.FaultRule{
		{Action: "UpdateSubscription", Kind: "code", Code: "isp.SYSTEM_ERROR", Rate: 0.15},
		{Action: "UpdateSubscription", Kind: "drop_after", Rate: 0.05},
		{Action: "UpdateSubscription", Kind: "http", Status: 502, Body: "bad gateway", Rate: 0.05},
	})
	e.start()
	e.cfg.WorkerID = e.ns + "-w2"
	e.start()
	jobs := enqueueRounds(e, 25, 3, "r", "1390000")
	bad, outcomes := violations(t, e, jobs, 60*time.Second)
	for _, b := range bad {
		t.Error(b)
	}
	t.Logf("%d jobs: %v; simulator %v", len(jobs), outcomes, e.sim.Stats().Calls["UpdateSubscription"])
	if outcomes["dead"] > 0 {
		t.Errorf("%d jobs dead: every code here is retryable", outcomes["dead"])
	}
	if outcomes[worker.OutcomeSuperseded] == 0 {
		t.Errorf("no job was superseded: the test did not exercise the fence")
	}
}

// TestFenceOffLosesTheNewest is the same check with the fence switched off:
// an older update whose call is slow lands after a newer one, and the
// check catches the wrong value. It proves the check can fail.
func TestFenceOffLosesTheNewest(t *testing.T) {
	t.Parallel()
	for _, fenced := range []bool{false, true} {
		t.Run(fmt.Sprintf("fence=%v", fenced), func(t *testing.T) {
			e := newEnv(t, dyplsim.Config{}, nil)
			if !fenced {
				e.rdb.AddHook(worker.BrokenFence("off"))
			}
			u1 := outIDUpdate(4, "older")
			u2 := u1
			u2.OutId = "newer"
			// Slow enough that the newer call, enqueued after the older one is
			// taken, lands first even on a loaded machine.
			e.sim.AddFault(dyplsim.FaultRule{SubsId: u1.SubsId, Kind: "latency", Delay: 2 * time.Second, Count: 1})
			e.start()
			// The older job's call is under way and slow when the newer
			// one is enqueued.
			jobs := []sent{{e.enqueue(u1), u1.SubsId, u1.OperateType, "older"}}
			eventually(t, 5*time.Second, "the older call in flight", func() bool {
				q, err := e.insp.GetQueueInfo(e.queue)
				return err == nil && q.Active == 1
			})
			time.Sleep(100 * time.Millisecond)
			jobs = append(jobs, sent{e.enqueue(u2), u2.SubsId, u2.OperateType, "newer"})
			bad, outcomes := violations(t, e, jobs, 10*time.Second)
			if fenced && len(bad) > 0 {
				t.Fatalf("with the fence: %v (%v)", bad, outcomes)
			}
			if !fenced && len(bad) == 0 {
				t.Fatalf("without the fence the older update should have won; outcomes %v", outcomes)
			}
		})
	}
}

func TestSupersededWithoutACall(t *testing.T) {
	t.Parallel()
	e := newStartedEnv(t)
	u1 := outIDUpdate(5, "first")
	r1, err := e.prod.Enqueue(e.ctx, u1, asynq.ProcessIn(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	u2 := u1
	u2.OutId = "second"
	id2 := e.enqueue(u2)
	if r := result(t, e.waitState(id2, 10*time.Second, asynq.TaskStateCompleted)); r.Outcome != worker.OutcomeApplied {
		t.Fatalf("newer job: %+v", r)
	}
	calls := e.sim.Stats().Calls["UpdateSubscription"]["OK"]
	r := result(t, e.waitState(r1.TaskID, 10*time.Second, asynq.TaskStateCompleted))
	if r.Outcome != worker.OutcomeSuperseded || r.Code != worker.CodeSuperseded || r.Note == "" {
		t.Fatalf("older job: %+v", r)
	}
	if got := e.sim.Stats().Calls["UpdateSubscription"]["OK"]; got != calls {
		t.Fatalf("the superseded job called the API (%d → %d calls)", calls, got)
	}
	if b, _ := e.sim.Binding(u1.SubsId); b.OutId != "second" {
		t.Fatalf("OutId %q", b.OutId)
	}
	if n := series(t, e.reg, "dyplsq_jobs_total", map[string]string{"outcome": "superseded"}); n != 1 {
		t.Fatalf("dyplsq_jobs_total{outcome=superseded} %v", n)
	}
}

// A job enqueued with plain asynq, without dyplsq's metadata, gets a
// version when first picked up.
func TestJobWithoutVersionGetsOne(t *testing.T) {
	t.Parallel()
	e := newStartedEnv(t)
	client := asynq.NewClientFromRedisClient(e.rdb)
	b := dyplsim.SeedBinding(6)
	payload := fmt.Sprintf(`{"PoolKey":%q,"SubsId":%q,"PhoneNoX":%q,"OperateType":"updateOutId","OutId":"plain"}`, b.PoolKey, b.SubsId, b.PhoneNoX)
	info, err := client.Enqueue(asynq.NewTask(tasks.TypeUpdateSubscription, []byte(payload)), asynq.Queue(e.queue), asynq.Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r := result(t, e.waitState(info.ID, 10*time.Second, asynq.TaskStateCompleted))
	if r.Outcome != worker.OutcomeApplied || r.Version <= 0 {
		t.Fatalf("%+v", r)
	}
}

// A pile of jobs for one binding waits its turn without holding the
// worker's slots (jobs for other bindings go through), and collapses: once
// the newest is applied the rest are superseded without calls.
func TestPileForOneBinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{Latency: 40 * time.Millisecond}, func(c *worker.Config) { c.Concurrency = 5 })
	var pile []string
	for i := 0; i < 40; i++ {
		u := seed(7, "updateOutId")
		u.OutId = fmt.Sprintf("pile-%d", i)
		pile = append(pile, e.enqueue(u))
	}
	var others []string
	for b := 8; b <= 15; b++ {
		u := outIDUpdate(b, "other")
		others = append(others, e.enqueue(u))
	}
	e.start()
	for _, id := range others {
		if r := result(t, e.waitState(id, 20*time.Second, asynq.TaskStateCompleted)); r.Outcome != worker.OutcomeApplied {
			t.Fatalf("other binding: %+v", r)
		}
	}
	outcomes := map[string]int{}
	for _, id := range pile {
		outcomes[result(t, e.waitState(id, 30*time.Second, asynq.TaskStateCompleted)).Outcome]++
	}
	if b, _ := e.sim.Binding(seed(7, "").SubsId); b.OutId != "pile-39" {
		t.Fatalf("binding 7 holds %q, want the newest pile-39 (%v)", b.OutId, outcomes)
	}
	if outcomes[worker.OutcomeSuperseded] == 0 || outcomes[worker.OutcomeApplied]+outcomes[worker.OutcomeSuperseded] != 40 {
		t.Fatalf("pile outcomes %v", outcomes)
	}
	t.Logf("pile of 40: %v", outcomes)
}
