package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/worker"
)

// The simulator applies the update and drops the connection, or answers
// the provider's own isp.SYSTEM_ERROR: the worker cannot know it was
// applied. Its retry either succeeds (setting a value the
// binding holds is accepted) or meets isv.BIND_CONFLICT (it is not), and
// then QuerySubscriptionDetail shows the number is already there: applied
// either way, never dead.
func TestAmbiguousAnswerAfterApply(t *testing.T) {
	t.Parallel()
	for i, fault := range []struct {
		name string
		rule dyplsim.FaultRule
	}{
		{"connection dropped", dyplsim.FaultRule{Kind: "drop_after"}},
		// The provider's own failure, after it applied the change.
		{"isp.SYSTEM_ERROR", dyplsim.FaultRule{Kind: "code", Code: "isp.SYSTEM_ERROR", Apply: true}},
	} {
		for _, conflicts := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/sameValueConflicts=%v", fault.name, conflicts), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, dyplsim.Config{SameValueConflicts: conflicts}, nil)
				u := seed(11+i, "updateNoA")
				u.PhoneNoA = fmt.Sprintf("1386666%04d", 11+i)
				f := fault.rule
				f.SubsId, f.Count = u.SubsId, 1
				e.sim.AddFault(f)
				e.start()
				r := result(t, e.waitState(e.enqueue(u), 10*time.Second, asynq.TaskStateCompleted))
				if r.Outcome != worker.OutcomeApplied || r.Attempts != 2 {
					t.Fatalf("result %+v", r)
				}
				calls := e.sim.Stats().Calls
				queries := calls["QuerySubscriptionDetail"]["OK"]
				if conflicts {
					if calls["UpdateSubscription"]["isv.BIND_CONFLICT"] != 1 || queries != 1 || !strings.Contains(r.Note, "QuerySubscriptionDetail") {
						t.Fatalf("want one conflict settled by one query: %v, note %q", calls, r.Note)
					}
				} else if queries != 0 {
					t.Fatalf("no check needed when the retry succeeds: %v", calls)
				}
				if b, _ := e.sim.Binding(u.SubsId); b.PhoneNoA != u.PhoneNoA {
					t.Fatalf("A %s", b.PhoneNoA)
				}
			})
		}
	}
}

// A worker that crashed mid-call leaves the attempt-started marker; the
// next attempt treats the earlier outcome as unknown. Without the marker
// the same conflict is dead at once.
func TestCrashMarkerMakesConflictAmbiguous(t *testing.T) {
	t.Parallel()
	for _, crashed := range []bool{true, false} {
		t.Run(fmt.Sprintf("crashed=%v", crashed), func(t *testing.T) {
			e := newEnv(t, dyplsim.Config{SameValueConflicts: true}, nil)
			u := seed(12, "updateNoB")
			u.PhoneNoB = "13977770012"
			// The crashed attempt had applied it.
			b, _ := e.sim.Binding(u.SubsId)
			b.PhoneNoB = u.PhoneNoB
			e.sim.PutBinding(b)
			r, err := e.prod.Enqueue(e.ctx, u, asynq.ProcessIn(300*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if crashed {
				key := fmt.Sprintf("%s:{%s}:job:%s:0", e.ns, u.SubsId, r.TaskID)
				if err := e.rdb.HSet(e.ctx, key, "inflight", time.Now().UnixMilli(), "first_seen", time.Now().UnixMilli()).Err(); err != nil {
					t.Fatal(err)
				}
			}
			e.start()
			info := e.waitState(r.TaskID, 10*time.Second, asynq.TaskStateCompleted, asynq.TaskStateArchived)
			if crashed && (info.State != asynq.TaskStateCompleted || result(t, info).Outcome != worker.OutcomeApplied) {
				t.Fatalf("after a crash: %v %s", info.State, info.Result)
			}
			if !crashed && info.State != asynq.TaskStateArchived {
				t.Fatalf("without a crash the conflict is dead: %v", info.State)
			}
		})
	}
}
