package admin

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/internal/redistest"
)

func newHalts(t *testing.T) (*Halts, *redis.Client) {
	t.Helper()
	rdb := redistest.Client(t)
	h := &Halts{Redis: rdb, Prefix: redistest.Namespace(t)}
	t.Cleanup(func() { rdb.Del(context.Background(), h.Key()) })
	return h, rdb
}

func TestHalts(t *testing.T) {
	ctx := context.Background()
	h, rdb := newHalts(t)
	if got, err := h.List(ctx); err != nil || len(got) != 0 {
		t.Fatalf("List of nothing: %v %v", got, err)
	}
	since := time.Now().Add(-time.Hour).Truncate(time.Second)
	a := Halt{Worker: "w1", Host: "h1", PID: 11, Code: "InvalidAccessKeyId.NotFound", Message: "key not found", Since: since, NextProbe: time.Now().Add(10 * time.Second)}
	if err := h.Report(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := h.Report(ctx, Halt{Worker: "w2", Code: "isv.OUT_OF_SERVICE"}); err != nil {
		t.Fatal(err)
	}
	// A worker that died while halted: Redis last saw its report two
	// minutes ago.
	rnow, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, h.Key(), "dead", fmt.Sprintf(`{"seen_ms":%d,"Worker":"dead","Code":"isv.OUT_OF_SERVICE"}`, rnow.Add(-2*time.Minute).UnixMilli()))
	// One reported without Redis's stamp (an older worker): judged by its
	// UpdatedAt against Redis's clock.
	rdb.HSet(ctx, h.Key(), "old", fmt.Sprintf(`{"Worker":"old","Code":"isv.OUT_OF_SERVICE","UpdatedAt":%q}`, rnow.Add(-2*time.Minute).Format(time.RFC3339Nano)))
	rdb.HSet(ctx, h.Key(), "junk", "{")
	if err := h.Report(ctx, Halt{}); err == nil {
		t.Error("Report without a worker name: no error")
	}

	got, err := h.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Worker != "w1" || got[1].Worker != "w2" {
		t.Fatalf("List = %+v", got)
	}
	if g := got[0]; g.Host != "h1" || g.PID != 11 || g.Code != a.Code || !g.Since.Equal(since) || g.UpdatedAt.IsZero() || g.NextProbe.IsZero() {
		t.Errorf("halt w1 = %+v", g)
	}
	if got[1].Since.IsZero() {
		t.Error("Since not defaulted")
	}
	if n, _ := rdb.HLen(ctx, h.Key()).Result(); n != 2 {
		t.Errorf("stale and unreadable halts not removed: %d entries", n)
	}

	if err := h.Clear(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.List(ctx); len(got) != 1 || got[0].Worker != "w2" {
		t.Errorf("after Clear: %+v", got)
	}

	short := &Halts{Redis: rdb, Prefix: h.Prefix, StaleAfter: time.Millisecond}
	time.Sleep(5 * time.Millisecond)
	if got, _ := short.List(ctx); len(got) != 0 {
		t.Errorf("StaleAfter ignored: %+v", got)
	}
}

func TestControl(t *testing.T) {
	ctx := context.Background()
	h, rdb := newHalts(t)
	in := asynq.NewInspectorFromRedisClient(rdb)
	cl := asynq.NewClientFromRedisClient(rdb)
	q, fresh := h.Prefix+"-q", h.Prefix+"-fresh"
	t.Cleanup(func() {
		_ = in.DeleteQueue(q, true)
		rdb.Del(ctx, "asynq:{"+q+"}:paused", "asynq:{"+fresh+"}:paused")
	})
	c := &Control{Inspector: in, Halts: h}

	for range 3 {
		if _, err := cl.Enqueue(asynq.NewTask("t", nil), asynq.Queue(q)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Report(ctx, Halt{Worker: "w1", Code: "SignatureDoesNotMatch"}); err != nil {
		t.Fatal(err)
	}

	st, halts, err := c.Status(ctx, q, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Queue != q || st[0].Pending != 3 || st[0].Size != 3 || st[0].Paused {
		t.Errorf("status %+v", st)
	}
	if st[1] != (QueueStatus{Queue: fresh}) {
		t.Errorf("status of a queue not created yet: %+v", st[1])
	}
	if len(halts) != 1 || halts[0].Code != "SignatureDoesNotMatch" {
		t.Errorf("halts %+v", halts)
	}

	for range 2 { // pausing twice is fine
		if err := c.Pause(ctx, q, fresh); err != nil {
			t.Fatal(err)
		}
	}
	st, _, err = c.Status(ctx, q, fresh)
	if err != nil || !st[0].Paused || !st[1].Paused {
		t.Fatalf("after Pause: %+v %v", st, err)
	}
	for range 2 {
		if err := c.Resume(ctx, q, fresh); err != nil {
			t.Fatal(err)
		}
	}
	st, _, err = c.Status(ctx, q, fresh)
	if err != nil || st[0].Paused || st[1].Paused {
		t.Fatalf("after Resume: %+v %v", st, err)
	}

	all, _, err := (&Control{Inspector: in}).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range all {
		found = found || s.Queue == q
	}
	if !found {
		t.Errorf("Status of every queue misses %s", q)
	}
}

func TestQueueMissing(t *testing.T) {
	in := asynq.NewInspectorFromRedisClient(redistest.Client(t))
	_, err := in.GetQueueInfo(redistest.Namespace(t))
	if err == nil || !queueMissing(err) {
		t.Errorf("GetQueueInfo of a missing queue: %v, not recognised", err)
	}
}

// TestHaltsIgnoreClocks: whether a halt is live is judged by Redis's clock,
// so neither a reporter's clock nor the reader's hides a live halt or keeps
// a dead one. A reporter ten minutes slow is a reader ten minutes fast.
func TestHaltsIgnoreClocks(t *testing.T) {
	ctx := context.Background()
	h, _ := newHalts(t)
	h.StaleAfter = time.Second
	for _, w := range []struct {
		name string
		skew time.Duration
	}{{"slow", -10 * time.Minute}, {"fast", 10 * time.Minute}} {
		if err := h.Report(ctx, Halt{Worker: w.name, Code: "isv.ACCOUNT_ABNORMAL", UpdatedAt: time.Now().Add(w.skew)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := h.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("halts just reported by workers 10 minutes slow and fast: List = %+v, want both", got)
	}
	// Neither reports again (both died): both go once StaleAfter has passed.
	time.Sleep(1500 * time.Millisecond)
	if got, err := h.List(ctx); err != nil || len(got) != 0 {
		t.Fatalf("halts not refreshed for 1.5 s with StaleAfter 1 s: List = %+v, %v; want none", got, err)
	}
}
