package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// These tests pin the interleavings in which a job used to end wrong or an
// old value used to win: a version lost on requeue or redelivery, a commit
// Redis refused, a settling query that failed, a requeue that forgot an
// unknown outcome, a binding released while the provider may still apply,
// jobs archived by asynq's own retry limit. RELIABILITY.md names them.

// plainTask is a job as a producer using plain asynq writes it: no _meta,
// so no version.
func plainTask(t *testing.T, u tasks.Update) *asynq.Task {
	t.Helper()
	u.Meta = nil
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	return asynq.NewTask(tasks.TypeUpdateSubscription, b)
}

func (e *env) enqueueTask(task *asynq.Task, opts ...asynq.Option) string {
	e.t.Helper()
	opts = append([]asynq.Option{asynq.Queue(e.queue), asynq.Retention(time.Hour)}, opts...)
	info, err := asynq.NewClientFromRedisClient(e.rdb).EnqueueContext(e.ctx, task, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.ID
}

func (e *env) requeueAll() []deadletter.Outcome {
	e.t.Helper()
	q := &deadletter.Requeuer{Store: e.dlq, Inspector: e.insp, Client: asynq.NewClientFromRedisClient(e.rdb)}
	out, err := q.Requeue(e.ctx, deadletter.Filter{Queue: e.queue}, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) bindingOf(subsID string) dyplsim.Binding {
	e.t.Helper()
	b, ok := e.sim.Binding(subsID)
	if !ok {
		e.t.Fatalf("no binding %s", subsID)
	}
	return b
}

// a. A plain-asynq job takes its version at first pick-up; when it dies, a
// newer update is applied, and the old job is requeued, it must keep its
// version and be superseded, not take a newer one and win.
func TestRequeueKeepsTheVersionOfAPlainJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	old := outIDUpdate(1, "older")
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", Params: map[string]string{"OutId": "older"},
		Code: "isv.INVALID_PARAMETERS", Count: 1})
	e.start()
	oldID := e.enqueueTask(plainTask(t, old))
	e.waitState(oldID, 10*time.Second, asynq.TaskStateArchived)
	e.deadRecord(oldID)

	newer := old
	newer.OutId = "newer"
	e.waitState(e.enqueue(newer), 10*time.Second, asynq.TaskStateCompleted)

	if out := e.requeueAll(); len(out) != 1 || out[0].Code != deadletter.OutcomeRequeued {
		t.Fatalf("requeue: %+v", out)
	}
	r := result(t, e.waitState(oldID, 10*time.Second, asynq.TaskStateCompleted))
	if r.Outcome != worker.OutcomeSuperseded {
		t.Errorf("requeued older job: %+v, want superseded", r)
	}
	if got := e.bindingOf(old.SubsId).OutId; got != "newer" {
		t.Errorf("OutId %q: the requeued older job overwrote the newer update", got)
	}
}

// a. A plain-asynq job applied, then delivered again with the same id (a
// worker died after the fence recorded it and before asynq heard): it keeps
// its version, so a newer update applied meanwhile still wins.
func TestRedeliveredPlainJobKeepsItsVersion(t *testing.T) {
	t.Parallel()
	e := newStartedEnv(t)
	old := outIDUpdate(2, "older")
	task := plainTask(t, old)
	id := e.enqueueTask(task, asynq.TaskID("plain-"+e.ns))
	first := result(t, e.waitState(id, 10*time.Second, asynq.TaskStateCompleted))
	if first.Outcome != worker.OutcomeApplied {
		t.Fatalf("first run: %+v", first)
	}
	newer := old
	newer.OutId = "newer"
	e.waitState(e.enqueue(newer), 10*time.Second, asynq.TaskStateCompleted)

	// The same task again, as asynq's lease recovery would run it.
	if err := e.insp.DeleteTask(e.queue, id); err != nil {
		t.Fatal(err)
	}
	e.enqueueTask(task, asynq.TaskID(id))
	again := result(t, e.waitState(id, 10*time.Second, asynq.TaskStateCompleted))
	if again.Outcome != worker.OutcomeSuperseded || again.Version != first.Version {
		t.Errorf("redelivered: %+v, want superseded with version %d", again, first.Version)
	}
	if got := e.bindingOf(old.SubsId).OutId; got != "newer" {
		t.Errorf("OutId %q: the redelivered older job overwrote the newer update", got)
	}
}

// k. A job delivered again after it was applied is reported applied with
// the RequestId of the call that applied it.
func TestAlreadyAppliedKeepsItsRequestId(t *testing.T) {
	t.Parallel()
	e := newStartedEnv(t)
	u := outIDUpdate(3, "once")
	r, err := e.prod.Enqueue(e.ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	first := result(t, e.waitState(r.TaskID, 10*time.Second, asynq.TaskStateCompleted))
	info, err := e.insp.GetTaskInfo(e.queue, r.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.insp.DeleteTask(e.queue, r.TaskID); err != nil {
		t.Fatal(err)
	}
	e.enqueueTask(asynq.NewTask(info.Type, info.Payload), asynq.TaskID(r.TaskID))
	again := result(t, e.waitState(r.TaskID, 10*time.Second, asynq.TaskStateCompleted))
	if again.Outcome != worker.OutcomeApplied || again.RequestID == "" || again.RequestID != first.RequestID {
		t.Errorf("again: %+v, want applied with RequestId %s", again, first.RequestID)
	}
	if n := e.sim.Stats().Calls["UpdateSubscription"]["OK"]; n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

// failScript is a go-redis hook that fails a fence script while fail()
// says so, as a Redis failover or a network blip would.
type failScript struct {
	sha  string
	fail func() bool
	hits atomic.Int64
}

func (f *failScript) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f *failScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if f.failed(cmd) {
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook fails the script where a pipeline carries it (the
// commit goes with the job's result); the other commands run.
func (f *failScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		rest := cmds[:0:0]
		var err error
		for _, c := range cmds {
			if f.failed(c) {
				err = c.Err()
				continue
			}
			rest = append(rest, c)
		}
		if len(rest) > 0 {
			if e := next(ctx, rest); e != nil {
				err = e
			}
		}
		return err
	}
}

// failed fails cmd, and says so, if it is the script and fail() says so.
func (f *failScript) failed(cmd redis.Cmder) bool {
	if a := cmd.Args(); len(a) > 1 && strings.EqualFold(cmd.Name(), "evalsha") && a[1] == f.sha && f.fail() {
		f.hits.Add(1)
		cmd.SetErr(errors.New("i/o timeout (injected)"))
		return true
	}
	return false
}

// b. The fence's commit fails for a while after the call applied: the job
// must not count as applied before its version is recorded, and an older
// job waiting meanwhile must not overwrite the binding.
func TestCommitRefusedByRedisNeverLetsAnOlderJobWin(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name         string
		outage, wait time.Duration
	}{
		{"outage shorter than the commit wait", 1600 * time.Millisecond, 10 * time.Second},
		{"outage longer than the commit wait", 2500 * time.Millisecond, 300 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, dyplsim.Config{}, func(cfg *worker.Config) { cfg.CommitWait = c.wait })
			var since atomic.Int64
			hook := &failScript{sha: worker.FenceCommitSHA, fail: func() bool {
				s := since.Load()
				if s == 0 {
					since.CompareAndSwap(0, time.Now().UnixNano())
					return true
				}
				return time.Since(time.Unix(0, s)) < c.outage
			}}
			e.rdb.AddHook(hook)
			e.start()
			old := outIDUpdate(4, "older")
			newer := old
			newer.OutId = "newer"
			ro, err := e.prod.Enqueue(e.ctx, old, asynq.ProcessIn(1500*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			rn := e.enqueue(newer)
			// asynq shows a task's result in any state: none stands while
			// the job is not applied (its commit refused).
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				info, err := e.insp.GetTaskInfo(e.queue, rn)
				if err != nil || info.State == asynq.TaskStateCompleted {
					break
				}
				if len(info.Result) > 0 && info.State != asynq.TaskStateActive {
					t.Fatalf("task %s is %s with result %s before its commit succeeded", rn, info.State, info.Result)
				}
			}
			rNew := result(t, e.waitState(rn, 20*time.Second, asynq.TaskStateCompleted))
			rOld := result(t, e.waitState(ro.TaskID, 20*time.Second, asynq.TaskStateCompleted))
			if hook.hits.Load() == 0 {
				t.Fatal("the commit never failed: the test did not run its case")
			}
			if rNew.Outcome != worker.OutcomeApplied || rOld.Outcome != worker.OutcomeSuperseded {
				t.Errorf("newer %+v, older %+v: want applied and superseded", rNew, rOld)
			}
			if got := e.bindingOf(old.SubsId).OutId; got != "newer" {
				t.Errorf("OutId %q: the older job overwrote an applied newer one", got)
			}
		})
	}
}

// c. After an attempt of unknown outcome the retry meets isv.BIND_CONFLICT,
// and the settling query fails once: the query is retried by its class,
// and the job ends applied, not dead.
func TestFailedSettleQueryIsRetriedNotDead(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"isp.SYSTEM_ERROR", "Throttling.User"} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, dyplsim.Config{SameValueConflicts: true}, nil)
			u := seed(5, "updateNoA")
			u.PhoneNoA = "13866660005"
			e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", SubsId: u.SubsId, Kind: "drop_after", Count: 1})
			e.sim.AddFault(dyplsim.FaultRule{Action: "QuerySubscriptionDetail", SubsId: u.SubsId, Code: code, Count: 1})
			e.start()
			info := e.waitState(e.enqueue(u), 15*time.Second, asynq.TaskStateCompleted, asynq.TaskStateArchived)
			if info.State != asynq.TaskStateCompleted || result(t, info).Outcome != worker.OutcomeApplied {
				t.Fatalf("state %v, result %s: the binding holds the number, so the job is applied", info.State, info.Result)
			}
			if q := e.sim.Stats().Calls["QuerySubscriptionDetail"]; q[code] != 1 || q["OK"] != 1 {
				t.Errorf("queries %v: want one failed, one answered", q)
			}
		})
	}
}

// d. A job whose attempt had an unknown outcome dies (its check could not
// be made); requeued, its retry meets isv.BIND_CONFLICT since the number
// is already set. The requeue must remember the doubt: applied, not dead
// a second time.
func TestRequeueRemembersAnUnknownOutcome(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{SameValueConflicts: true}, func(c *worker.Config) { c.MaxAttempts = 1 })
	u := seed(6, "updateNoA")
	u.PhoneNoA = "13866660006"
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", SubsId: u.SubsId, Kind: "drop_after", Count: 1})
	e.sim.AddFault(dyplsim.FaultRule{Action: "QuerySubscriptionDetail", SubsId: u.SubsId, Code: "isp.SYSTEM_ERROR", Count: 1})
	e.start()
	id := e.enqueue(u)
	e.waitState(id, 10*time.Second, asynq.TaskStateArchived)
	if rec := e.deadRecord(id); !rec.Ambiguous {
		t.Errorf("dead letter %+v does not say the outcome was unknown", rec)
	}
	if out := e.requeueAll(); len(out) != 1 || out[0].Code != deadletter.OutcomeRequeued {
		t.Fatalf("requeue: %+v", out)
	}
	info := e.waitState(id, 10*time.Second, asynq.TaskStateCompleted, asynq.TaskStateArchived)
	if info.State != asynq.TaskStateCompleted || result(t, info).Outcome != worker.OutcomeApplied {
		t.Fatalf("requeued: state %v, result %s: want applied", info.State, info.Result)
	}
}

// h. A call times out while the provider is still working on it; a newer
// update of the same binding must not reach the provider before the
// provider may have finished, or the late application of the older call
// lands last.
func TestBindingStaysLockedWhileACallMayStillApply(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil) // call timeout 2s, AmbiguousHold its default
	old := seed(7, "updateNoA")
	old.PhoneNoA = "13866660071"
	newer := old
	newer.PhoneNoA = "13866660072"
	// The older call is applied 3.5 s after it arrives, long after the
	// client gave up.
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", Params: map[string]string{"PhoneNoA": old.PhoneNoA},
		Kind: "latency", Delay: 3500 * time.Millisecond, Count: 1})
	e.start()
	oldID := e.enqueue(old)
	eventually(t, 5*time.Second, "the older call in flight", func() bool {
		q, err := e.insp.GetQueueInfo(e.queue)
		return err == nil && q.Active == 1
	})
	newID := e.enqueue(newer)
	e.waitState(newID, 20*time.Second, asynq.TaskStateCompleted)
	e.waitState(oldID, 20*time.Second, asynq.TaskStateCompleted, asynq.TaskStateArchived)
	time.Sleep(2 * time.Second) // past the older call's late application
	if got := e.bindingOf(old.SubsId).PhoneNoA; got != newer.PhoneNoA {
		t.Errorf("PhoneNoA %s: the older call, still running at the provider, landed after the newer one", mask.Number(got))
	}
}

// e. A job whose asynq retry limit comes before JOB_MAX_ATTEMPTS ends dead
// with its true reason and code, written by the handler, not found later
// in the archive as an operator's click.
func TestAsynqRetryLimitEndsDeadWithTheTrueReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) { c.MaxAttempts = 5 })
	u := outIDUpdate(8, "never")
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", SubsId: u.SubsId, Kind: "http", Status: 500})
	e.start()
	id := e.enqueueTask(plainTask(t, u), asynq.MaxRetry(1))
	e.waitState(id, 10*time.Second, asynq.TaskStateArchived)
	rec := e.deadRecord(id)
	if rec.Code != "HTTP.500" || !strings.Contains(rec.Reason, "asynq retry limit") {
		t.Errorf("record %s: want code HTTP.500 and the asynq retry limit as reason", rec)
	}
}

// e. A payload of a newer schema that no worker can read, on its last
// asynq try, is dead with a code that says so.
func TestUnreadableSchemaOnTheLastTryIsDeadWithItsReason(t *testing.T) {
	t.Parallel()
	e := newStartedEnv(t)
	payload := `{"SubsId":"1000000000000009","PhoneNoX":"17000000008","OperateType":"updateOutId","OutId":"x","_meta":{"schema":99}}`
	id := e.enqueueTask(asynq.NewTask(tasks.TypeUpdateSubscription, []byte(payload)), asynq.MaxRetry(0))
	e.waitState(id, 10*time.Second, asynq.TaskStateArchived)
	rec := e.deadRecord(id)
	if rec.Code != worker.CodeUnsupportedSchema {
		t.Errorf("record %s: want %s", rec, worker.CodeUnsupportedSchema)
	}
}

// A job on asynq's last try whose attempt had an unknown outcome reads the
// binding before it is called dead.
func TestLastTryInDoubtChecksTheBinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) { c.AmbiguousHold = 200 * time.Millisecond })
	u := seed(9, "updateNoA")
	u.PhoneNoA = "13866660009"
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", SubsId: u.SubsId, Kind: "drop_after", Count: 1})
	e.start()
	r, err := e.prod.Enqueue(e.ctx, u, asynq.MaxRetry(0))
	if err != nil {
		t.Fatal(err)
	}
	info := e.waitState(r.TaskID, 10*time.Second, asynq.TaskStateCompleted, asynq.TaskStateArchived)
	if info.State != asynq.TaskStateCompleted || result(t, info).Outcome != worker.OutcomeApplied {
		t.Fatalf("state %v, result %s: its own call set the number, so the job is applied", info.State, info.Result)
	}
}

// The last attempt times out while the provider is still applying it: the
// last-chance check waits for the call to have finished before reading the
// binding, and finds the number.
func TestLastCheckSeesALateApplication(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) { c.MaxAttempts = 1 }) // call timeout 2s
	u := seed(10, "updateNoA")
	u.PhoneNoA = "13866660010"
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", SubsId: u.SubsId, Kind: "latency", Delay: 3 * time.Second, Count: 1})
	e.start()
	info := e.waitState(e.enqueue(u), 15*time.Second, asynq.TaskStateCompleted, asynq.TaskStateArchived)
	if info.State != asynq.TaskStateCompleted || result(t, info).Outcome != worker.OutcomeApplied {
		t.Fatalf("state %v, result %s: the call applied after the client gave up; want applied", info.State, info.Result)
	}
}

// lostReply executes a script and then reports an error, as when the
// connection drops after Redis ran the command.
type lostReply struct {
	sha  string
	left atomic.Int64
}

func (f *lostReply) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f *lostReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if a := cmd.Args(); err == nil && len(a) > 1 && strings.EqualFold(cmd.Name(), "evalsha") && a[1] == f.sha && f.left.Add(-1) >= 0 {
			err = errors.New("read: connection reset (injected after execution)")
			cmd.SetErr(err)
		}
		return err
	}
}
func (f *lostReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// The reply to the fence's begin is lost after Redis took the lock: the
// job cannot tell that from a crash mid-call, so its next attempt waits out
// the lock like anyone else (the provider may be working on a call), and
// then applies: nothing is lost.
func TestLostBeginReplyStillApplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil) // lock TTL: 1s + 2·2s + 5s
	hook := &lostReply{sha: worker.FenceBeginSHA}
	hook.left.Store(1)
	e.rdb.AddHook(hook)
	e.start()
	u := outIDUpdate(11, "after-a-lost-reply")
	r := result(t, e.waitState(e.enqueue(u), 25*time.Second, asynq.TaskStateCompleted))
	if r.Outcome != worker.OutcomeApplied || hook.left.Load() >= 0 {
		t.Fatalf("result %+v (lost replies left %d)", r, hook.left.Load())
	}
	if got := e.bindingOf(u.SubsId).OutId; got != u.OutId {
		t.Errorf("OutId %q", got)
	}
}

// failKeyOnce fails, once, the first command named name (or the pipeline
// or transaction holding it) that names key, as a dropped connection would.
type failKeyOnce struct {
	name, key string
	done      atomic.Bool
}

func (f *failKeyOnce) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f *failKeyOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if f.hit(cmd) {
			cmd.SetErr(errors.New("connection reset (injected)"))
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}
func (f *failKeyOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if f.hit(c) {
				err := errors.New("connection reset (injected)")
				for _, c := range cmds {
					c.SetErr(err)
				}
				return err
			}
		}
		return next(ctx, cmds)
	}
}
func (f *failKeyOnce) hit(cmd redis.Cmder) bool {
	if !strings.EqualFold(cmd.Name(), f.name) || f.done.Load() {
		return false
	}
	for _, a := range cmd.Args()[1:] {
		if s, ok := a.(string); ok && s == f.key {
			return f.done.CompareAndSwap(false, true)
		}
	}
	return false
}

// A requeue that queued a job but could not delete its dead-letter record
// leaves a record standing for a live job: the job, once applied, deletes
// it, so no record stands for a job that is not dead.
func TestRequeuedJobDeletesTheRecordTheRequeueLeft(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	u := seed(7, "updateNoA")
	u.PhoneNoA = "13866660007"
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", SubsId: u.SubsId, Code: "isv.BIND_CONFLICT", Count: 1})
	e.start()
	id := e.enqueue(u)
	e.waitState(id, 10*time.Second, asynq.TaskStateArchived)
	e.deadRecord(id)
	rdb := redistest.Client(t)
	hook := &failKeyOnce{name: "evalsha", key: e.dlq.RecordKey(id)}
	rdb.AddHook(hook)
	q := &deadletter.Requeuer{Store: &deadletter.Store{Redis: rdb, Prefix: e.ns}, Inspector: e.insp, Client: asynq.NewClientFromRedisClient(rdb)}
	out, err := q.Requeue(e.ctx, deadletter.Filter{Queue: e.queue}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Code != deadletter.OutcomeRequeued || out[0].Err == nil || !hook.done.Load() {
		t.Fatalf("requeue %+v: the test did not make its case (queued, record kept by a failed delete)", out)
	}
	info := e.waitState(id, 10*time.Second, asynq.TaskStateCompleted, asynq.TaskStateArchived)
	if info.State != asynq.TaskStateCompleted || result(t, info).Outcome != worker.OutcomeApplied {
		t.Fatalf("requeued: state %v, result %s: want applied", info.State, info.Result)
	}
	if _, ok, err := e.dlq.Get(e.ctx, id); err != nil || ok {
		t.Errorf("a dead-letter record stands for applied task %s (err %v)", id, err)
	}
	if n, _ := e.dlq.Count(e.ctx); n != 0 {
		t.Errorf("%d records indexed", n)
	}
}

// A job run again after asynq lost its archive (its record written by the
// first run) deletes that record when it ends applied; when the deletion
// fails the job runs once more, without a call, to delete it.
func TestRerunJobDeletesItsStaleRecordDespiteAFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	u := seed(8, "updateNoA")
	u.PhoneNoA = "13866660008"
	// The first run fails for a while (a retry), as when asynq lost the
	// archive of a first run that died.
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", SubsId: u.SubsId, Code: "isp.SYSTEM_ERROR", Count: 1})
	r, err := e.prod.Enqueue(e.ctx, u, asynq.ProcessIn(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	id := r.TaskID
	rec := deadletter.Record{TaskID: id, Queue: e.queue, Type: tasks.TypeUpdateSubscription, Code: "isv.BIND_CONFLICT",
		Reason: deadletter.ReasonPermanent, Attempts: 1, DiedAt: time.Now(), Version: r.Version}
	if err := e.dlq.Put(e.ctx, rec); err != nil {
		t.Fatal(err)
	}
	hook := &failKeyOnce{name: "evalsha", key: e.dlq.RecordKey(id)}
	e.rdb.AddHook(hook)
	e.start()
	info := e.waitState(id, 10*time.Second, asynq.TaskStateCompleted, asynq.TaskStateArchived)
	if info.State != asynq.TaskStateCompleted || result(t, info).Outcome != worker.OutcomeApplied {
		t.Fatalf("state %v, result %s: want applied", info.State, info.Result)
	}
	if !hook.done.Load() {
		t.Fatal("the record's deletion never failed: the test did not make its case")
	}
	if _, ok, err := e.dlq.Get(e.ctx, id); err != nil || ok {
		t.Errorf("a dead-letter record stands for applied task %s (err %v)", id, err)
	}
	if n := e.sim.Stats().Calls["UpdateSubscription"]["OK"]; n != 1 {
		t.Errorf("%d applying calls, want 1", n)
	}
}
