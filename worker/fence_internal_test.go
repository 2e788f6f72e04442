package worker

import (
	"context"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/tasks"
)

// An older job waiting on a newer job's call of unknown outcome must keep
// waiting when a third, newest, job comes and goes without applying: each
// job has its own intent, and one's end never clears another's.
func TestIntentsAreKeptPerJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	f := &fence{rdb: rdb, prefix: ns, lockTTL: 5 * time.Second, stateTTL: time.Hour}
	t.Cleanup(func() {
		fk, lk := f.keys("S1")
		rdb.Del(ctx, fk, lk)
	})
	mk := func(task string, v int64) *job {
		return &job{id: task, version: v, u: tasks.Update{SubsId: "S1", OperateType: "updateExpire",
			Meta: &tasks.Meta{Version: v}}, st: &jobState{key: ns + ":{S1}:job:" + task}}
	}
	tokens := map[string]string{"A": lockToken("A"), "C": lockToken("C"), "Z": lockToken("Z")}
	begin := func(j *job) fenceVerdict {
		t.Helper()
		b, err := f.begin(ctx, j, tokens[j.id])
		if err != nil {
			t.Fatal(err)
		}
		return b.verdict
	}
	a, c, z := mk("A", 2), mk("C", 3), mk("Z", 1)
	if v := begin(a); v != fenceGo {
		t.Fatalf("A: %v", v)
	}
	// A's call times out: in doubt, the lock held a moment.
	if _, err := f.end(ctx, a, attemptEnd{token: tokens["A"], hold: time.Millisecond, state: "record", counted: true, ambiguous: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if v := begin(z); v != fenceBlocked {
		t.Fatalf("Z (older) while A is in doubt: %v, want blocked", v)
	}
	// C, newer, goes ahead, then ends without applying (throttled, say).
	if v := begin(c); v != fenceGo {
		t.Fatalf("C: %v", v)
	}
	if _, err := f.end(ctx, c, attemptEnd{token: tokens["C"], clearIntent: true, state: "keep"}); err != nil {
		t.Fatal(err)
	}
	if v := begin(z); v != fenceBlocked {
		t.Fatalf("Z after C came and went: %v, want still blocked by A", v)
	}
	// A settles: applied. Z is then superseded.
	if _, _, err := f.commit(ctx, a, tokens["A"], "R-A", nil); err != nil {
		t.Fatal(err)
	}
	if v := begin(z); v != fenceSuperseded {
		t.Fatalf("Z after A was recorded: %v, want superseded", v)
	}
}

// TestBeginRunTwiceIsNoCrash: go-redis sends a script again when its reply
// is lost (a read timeout), so the begin that reads the job's state can run
// twice for one attempt. The second run must not take the first run's
// attempt marker for a crashed attempt; an earlier attempt's crash that the
// first run saw must still show.
func TestBeginRunTwiceIsNoCrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	f := &fence{rdb: rdb, prefix: ns, lockTTL: 5 * time.Second, stateTTL: time.Hour}
	t.Cleanup(func() {
		fk, lk := f.keys("S2")
		rdb.Del(ctx, fk, lk, ns+":{S2}:job:A", ns+":{S2}:job:B")
	})
	mk := func(task string, v int64) *job {
		return &job{id: task, version: v, stateLater: true, u: tasks.Update{SubsId: "S2", OperateType: "updateExpire",
			Meta: &tasks.Meta{Version: v}}, st: &jobState{key: ns + ":{S2}:job:" + task}}
	}
	twice := func(j *job) (first, second *jobState) {
		t.Helper()
		token := lockToken(j.id)
		for _, st := range []**jobState{&first, &second} {
			b, err := f.begin(ctx, j, token)
			if err != nil || b.verdict != fenceGo {
				t.Fatalf("begin of %s: %v %v", j.id, b.verdict, err)
			}
			*st = &jobState{}
			(*st).fill(b.state, true, time.Now())
		}
		return first, second
	}
	a1, a2 := twice(mk("A", 1))
	if a1.Ambiguous || a2.Ambiguous || a2.Crashed {
		t.Errorf("a fresh job's begin run twice: first %+v, second %+v; want neither in doubt", a1, a2)
	}
	// B's earlier attempt crashed mid-call: its marker is in its state.
	if _, err := f.end(ctx, mk("A", 1), attemptEnd{token: "", clearIntent: true, state: "keep"}); err != nil {
		t.Fatal(err)
	}
	rdb.Del(ctx, ns+":{S2}:lock")
	rdb.HSet(ctx, ns+":{S2}:job:B", "inflight", time.Now().Add(-time.Minute).UnixMilli(), "attempts", 1)
	b1, b2 := twice(mk("B", 2))
	if !b1.Ambiguous || !b2.Ambiguous {
		t.Errorf("after a crash, begin run twice: first %+v, second %+v; want both in doubt", b1, b2)
	}
}
